using System.Security.Cryptography;
using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>
/// Checks bytes against a server's digest as they arrive, piece by piece, so corruption is caught at the piece
/// where it happened, in the digest's piece algorithm. When every piece matches, the whole file matches the content the server hashed (the pieces
/// and the whole-file hash come from one pass over one version of the file), so no second whole-file pass is needed;
/// a digest without piece hashes (files past ~128 GiB) is checked whole instead.
/// </summary>
public sealed class PieceVerifier : IDisposable
{
    private readonly FileDigest _digest;
    private readonly string _path;
    private readonly string _endpoint;
    private readonly PieceHasher? _pieces;
    private readonly IncrementalHash? _whole;
    private readonly PieceHashed _checkPiece;
    private readonly Action<int>? _pieceVerified;
    private long _position;

    // Pieces from _firstUnreported up to _verifiedEnd matched but are reported only once their bytes are written.
    private int _firstUnreported;
    private int _verifiedEnd;

    public PieceVerifier(FileDigest digest, string path, string endpoint)
        : this(digest, path, endpoint, firstPiece: 0, pieceVerified: null)
    {
    }

    /// <summary>
    /// Checks bytes that start at <paramref name="firstPiece"/>, reporting each piece that matched once
    /// <see cref="ReportWritten"/> says its bytes are on the disk.
    /// </summary>
    public PieceVerifier(FileDigest digest, string path, string endpoint, int firstPiece, Action<int>? pieceVerified)
    {
        _digest = digest;
        _path = path;
        _endpoint = endpoint;
        _position = (long)firstPiece * digest.PieceSize;
        _pieceVerified = pieceVerified;
        _firstUnreported = _verifiedEnd = firstPiece;
        _checkPiece = CheckPiece;
        if (ByPiece)
        {
            _pieces = new PieceHasher(digest.PieceAlgorithm, digest.Length, digest.PieceSize, firstPiece);
        }
        else
        {
            _whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        }
    }

    /// <summary>Whether a piece hash has been checked; a digest without piece hashes is checked only whole.</summary>
    public bool ByPiece => _digest.PieceCount > 0;

    public void Append(ReadOnlySpan<byte> data)
    {
        if (_pieces is not null)
        {
            _pieces.Append(data, _checkPiece);
            _position = _pieces.Position;
        }
        else
        {
            _whole!.AppendData(data);
            _position += data.Length;
        }
    }

    /// <summary>
    /// Reports the pieces that matched among the bytes appended so far, which the caller has now written: a piece
    /// whose write failed (a full disk) must never count as held.
    /// </summary>
    public void ReportWritten()
    {
        for (; _firstUnreported < _verifiedEnd; _firstUnreported++)
        {
            _pieceVerified?.Invoke(_firstUnreported);
        }
    }

    /// <summary>Call after the last byte: fails unless exactly the digest's length arrived and every check passed.</summary>
    public void Complete()
    {
        if (_position != _digest.Length)
        {
            throw new FileShareException(FileShareErrorKind.IncompleteTransfer, $"'{_path}' from {_endpoint}: {_position:N0} of {_digest.Length:N0} bytes arrived.", _endpoint, _path);
        }

        if (_whole is not null)
        {
            Span<byte> actual = stackalloc byte[ProtocolConstants.Sha256Length];
            _whole.GetHashAndReset(actual);
            if (!actual.SequenceEqual(_digest.Sha256))
            {
                throw Mismatch($"the file's SHA-256 {Convert.ToHexString(actual)} is not the server's {_digest.Sha256Hex}");
            }
        }
    }

    public void Dispose()
    {
        _pieces?.Dispose();
        _whole?.Dispose();
    }

    private void CheckPiece(int piece, ReadOnlySpan<byte> actual)
    {
        if (!actual.SequenceEqual(_digest.PieceHash(piece)))
        {
            long start = (long)piece * _digest.PieceSize;
            long end = Math.Min(start + _digest.PieceSize, _digest.Length) - 1;
            throw Mismatch($"piece {piece} (bytes {start:N0}-{end:N0}) does not match the server's {PieceHasher.NameOf(_digest.PieceAlgorithm)}");
        }

        _verifiedEnd = piece + 1;
    }

    private FileShareException Mismatch(string what) =>
        new(FileShareErrorKind.ContentMismatch, $"'{_path}' from {_endpoint}: {what}; the data was damaged on the way or at the source.", _endpoint, _path);
}
