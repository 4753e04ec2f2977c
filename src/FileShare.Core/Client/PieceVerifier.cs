using System.Security.Cryptography;
using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>
/// Checks bytes against a server's digest as they arrive, piece by piece, so corruption is caught at the piece
/// where it happened. When every piece matches, the whole file matches the content the server hashed (the pieces
/// and the whole-file hash come from one pass over one version of the file), so no second whole-file pass is needed;
/// a digest without piece hashes (files past ~128 GiB) is checked whole instead.
/// </summary>
public sealed class PieceVerifier : IDisposable
{
    private readonly FileDigest _digest;
    private readonly string _path;
    private readonly string _endpoint;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly Action<int>? _pieceVerified;
    private long _position;
    private long _pieceFilled;
    private int _piece;

    public PieceVerifier(FileDigest digest, string path, string endpoint)
        : this(digest, path, endpoint, firstPiece: 0, pieceVerified: null)
    {
    }

    /// <summary>Checks bytes that start at <paramref name="firstPiece"/>, reporting each piece that matches as it completes.</summary>
    public PieceVerifier(FileDigest digest, string path, string endpoint, int firstPiece, Action<int>? pieceVerified)
    {
        _digest = digest;
        _path = path;
        _endpoint = endpoint;
        _piece = firstPiece;
        _position = (long)firstPiece * digest.PieceSize;
        _pieceVerified = pieceVerified;
    }

    /// <summary>Whether a piece hash has been checked; a digest without piece hashes is checked only whole.</summary>
    public bool ByPiece => _digest.PieceCount > 0;

    public void Append(ReadOnlySpan<byte> data)
    {
        if (!ByPiece)
        {
            _hash.AppendData(data);
            _position += data.Length;
            return;
        }

        while (!data.IsEmpty)
        {
            int take = (int)Math.Min(data.Length, _digest.PieceSize - _pieceFilled);
            _hash.AppendData(data[..take]);
            data = data[take..];
            _pieceFilled += take;
            _position += take;
            if (_pieceFilled == _digest.PieceSize || _position == _digest.Length)
            {
                CheckPiece();
            }
        }
    }

    /// <summary>Call after the last byte: fails unless exactly the digest's length arrived and every check passed.</summary>
    public void Complete()
    {
        if (_position != _digest.Length)
        {
            throw new FileShareException(FileShareErrorKind.IncompleteTransfer, $"'{_path}' from {_endpoint}: {_position:N0} of {_digest.Length:N0} bytes arrived.", _endpoint, _path);
        }

        if (!ByPiece)
        {
            Span<byte> actual = stackalloc byte[ProtocolConstants.Sha256Length];
            _hash.GetHashAndReset(actual);
            if (!actual.SequenceEqual(_digest.Sha256))
            {
                throw Mismatch($"the file's SHA-256 {Convert.ToHexString(actual)} is not the server's {_digest.Sha256Hex}");
            }
        }
    }

    public void Dispose() => _hash.Dispose();

    private void CheckPiece()
    {
        Span<byte> actual = stackalloc byte[ProtocolConstants.Sha256Length];
        _hash.GetHashAndReset(actual);
        if (!actual.SequenceEqual(_digest.PieceHash(_piece)))
        {
            long start = (long)_piece * _digest.PieceSize;
            throw Mismatch($"piece {_piece} (bytes {start:N0}-{_position - 1:N0}) does not match the server's SHA-256");
        }

        _pieceVerified?.Invoke(_piece);
        _piece++;
        _pieceFilled = 0;
    }

    private FileShareException Mismatch(string what) =>
        new(FileShareErrorKind.ContentMismatch, $"'{_path}' from {_endpoint}: {what}; the data was damaged on the way or at the source.", _endpoint, _path);
}
