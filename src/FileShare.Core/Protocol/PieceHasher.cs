using System.Buffers;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace FileShare.Protocol;

/// <summary>The hash of each piece in a digest; the whole-file hash is SHA-256 whatever the pieces use.</summary>
public enum PieceHashAlgorithm : byte
{
    Sha256 = 0,

    /// <summary>BLAKE3 (32-byte output): about three times SHA-256's speed per core, and as strong for this use.</summary>
    Blake3 = 1,

    /// <summary>
    /// XXH3-128 (16 bytes, then 16 zero bytes to fill the 32-byte slot): five times BLAKE3's speed, but not
    /// cryptographic, so a digest in it is asked for only when every byte comes from the server that made it.
    /// </summary>
    XxHash128 = 2,
}

/// <summary>Called for each piece as its last byte is hashed; <paramref name="digest"/> is valid only during the call.</summary>
public delegate void PieceHashed(int piece, ReadOnlySpan<byte> digest);

/// <summary>
/// Hashes consecutive pieces of <c>pieceSize</c> bytes of a file of <c>length</c> bytes, fed in chunks of any size
/// from <c>firstPiece</c> on. Server and client both cut pieces here, so a digest is always checked the way it was made.
/// </summary>
public sealed class PieceHasher : IDisposable
{
    // Sixteen BLAKE3 chunks of 1 KiB: its widest SIMD step. Fed reads of any size, BLAKE3 compresses the chunks left
    // over at either end one at a time (6% of a 200-download client's CPU), so it is fed whole groups only.
    private const int Blake3Group = 16 * 1024;
    private const int XxHash128Length = 16;

    private readonly PieceHashAlgorithm _algorithm;
    private readonly long _length;
    private readonly int _pieceSize;
    private readonly IncrementalHash? _sha256;
    private readonly Blake3.Hasher? _blake3;
    private readonly XxHash128? _xxHash128;
    // Rented: a first hash on the server and every download on the client make a hasher, and a 16 KiB array each
    // was most of what ten servers' first hashes left behind for the GC.
    private byte[] _group = [];
    private int _grouped;
    private long _position;
    private int _pieceFilled;
    private int _piece;

    public PieceHasher(PieceHashAlgorithm algorithm, long length, int pieceSize, int firstPiece = 0)
    {
        _algorithm = algorithm;
        _length = length;
        _pieceSize = pieceSize;
        _piece = firstPiece;
        _position = (long)firstPiece * pieceSize;
        switch (algorithm)
        {
            case PieceHashAlgorithm.Sha256:
                _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                break;
            case PieceHashAlgorithm.Blake3:
                _blake3 = Blake3.Hasher.New();
                _group = ArrayPool<byte>.Shared.Rent(Blake3Group);
                break;
            default:
                _xxHash128 = NewXxHash128();
                break;
        }
    }

    // Not inlined: allocating a type of System.IO.Hashing in the constructor's own code made every hasher (SHA-256 for
    // a one-piece file, BLAKE3) load that assembly, a cost on every cold one-file download.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static XxHash128 NewXxHash128() => new();

    /// <summary>Offset in the file of the next byte to hash.</summary>
    public long Position => _position;

    public static bool IsKnown(PieceHashAlgorithm algorithm) => algorithm is PieceHashAlgorithm.Sha256 or PieceHashAlgorithm.Blake3 or PieceHashAlgorithm.XxHash128;

    /// <summary>Whether no one can make other bytes with the same piece hash (what several sources need).</summary>
    public static bool IsCryptographic(PieceHashAlgorithm algorithm) => algorithm != PieceHashAlgorithm.XxHash128;

    public static string NameOf(PieceHashAlgorithm algorithm) => algorithm switch
    {
        PieceHashAlgorithm.Sha256 => "SHA-256",
        PieceHashAlgorithm.Blake3 => "BLAKE3",
        _ => "XXH3-128",
    };

    /// <summary>The digest of one whole piece held in memory, in a 32-byte <paramref name="digest"/>.</summary>
    public static void HashPiece(PieceHashAlgorithm algorithm, ReadOnlySpan<byte> piece, Span<byte> digest)
    {
        switch (algorithm)
        {
            case PieceHashAlgorithm.Sha256:
                SHA256.HashData(piece, digest);
                break;
            case PieceHashAlgorithm.Blake3:
                Blake3.Hasher.Hash(piece, digest);
                break;
            default:
                XxHash128.Hash(piece, digest);
                digest[XxHash128Length..].Clear();
                break;
        }
    }

    public void Append(ReadOnlySpan<byte> data, PieceHashed pieceHashed)
    {
        Span<byte> digest = stackalloc byte[ProtocolConstants.Sha256Length];
        while (!data.IsEmpty)
        {
            int take = (int)Math.Min(data.Length, _pieceSize - _pieceFilled);
            if (take == _pieceSize)
            {
                // A whole piece in one span hashes in one call, which lets BLAKE3 spread its chunks across SIMD lanes.
                HashPiece(_algorithm, data[..take], digest);
            }
            else
            {
                Update(data[..take]);
            }

            data = data[take..];
            _pieceFilled += take;
            _position += take;
            if (_pieceFilled == _pieceSize || _position == _length)
            {
                if (take != _pieceSize)
                {
                    Finish(digest);
                }

                pieceHashed(_piece, digest);
                _piece++;
                _pieceFilled = 0;
            }
        }
    }

    public void Dispose()
    {
        _sha256?.Dispose();
        _blake3?.Dispose();
        if (_group.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_group);
            _group = [];
        }
    }

    private void Update(ReadOnlySpan<byte> data)
    {
        if (_sha256 is not null)
        {
            _sha256.AppendData(data);
        }
        else if (_xxHash128 is not null)
        {
            _xxHash128.Append(data);
        }
        else
        {
            if (_grouped > 0)
            {
                int take = Math.Min(data.Length, Blake3Group - _grouped);
                data[..take].CopyTo(_group.AsSpan(_grouped));
                _grouped += take;
                data = data[take..];
                if (_grouped < Blake3Group)
                {
                    return;
                }

                _blake3!.Update(_group.AsSpan(0, Blake3Group));
                _grouped = 0;
            }

            int whole = data.Length - (data.Length % Blake3Group);
            if (whole > 0)
            {
                _blake3!.Update(data[..whole]);
            }

            data[whole..].CopyTo(_group);
            _grouped = data.Length - whole;
        }
    }

    private void Finish(Span<byte> digest)
    {
        if (_sha256 is not null)
        {
            _sha256.GetHashAndReset(digest);
        }
        else if (_xxHash128 is not null)
        {
            _xxHash128.GetHashAndReset(digest);
            digest[XxHash128Length..].Clear();
        }
        else
        {
            _blake3!.Update(_group.AsSpan(0, _grouped));
            _grouped = 0;
            _blake3.Finalize(digest);
            _blake3.Reset();
        }
    }
}
