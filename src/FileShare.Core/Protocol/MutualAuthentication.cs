using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FileShare.Protocol;

/// <summary>
/// The access-key exchange that follows the hellos (and TLS, when granted), three fixed-size messages:
/// the server's challenge (a fresh nonce), the client's nonce and proof, the server's status and proof.
/// A proof is HMAC-SHA-256 under the key of a role label, both hellos, both nonces and the channel binding.
/// Fresh nonces on both sides defeat replay; the role labels keep one side's proof from passing for the other's;
/// the hellos stop a downgrade of the features; the channel binding (SHA-256 of the server certificate each end
/// sees) makes a TLS-terminating man in the middle fail. The server proves itself only after the client has.
/// </summary>
public static class MutualAuthentication
{
    public const int ChallengeLength = ProtocolConstants.NonceLength;
    public const int ResponseLength = ProtocolConstants.NonceLength + ProtocolConstants.ProofLength;
    public const int ResultLength = 2 + ProtocolConstants.ProofLength;

    private static ReadOnlySpan<byte> ClientLabel => "FileShare/1 client proof\0"u8;
    private static ReadOnlySpan<byte> ServerLabel => "FileShare/1 server proof\0"u8;

    public enum Outcome
    {
        Authenticated,

        /// <summary>The server found the client's proof wrong: the keys differ.</summary>
        KeyRejected,

        /// <summary>The server accepted the client but its own proof is wrong: it does not hold the key.</summary>
        ServerNotProven,
    }

    /// <summary>SHA-256 of the certificate the server presented; empty without TLS.</summary>
    public static byte[] ChannelBinding(X509Certificate? serverCertificate) =>
        serverCertificate is null ? [] : SHA256.HashData(serverCertificate.GetRawCertData());

    /// <summary>Runs the server's side; true when the client proved it holds the key (the client then learns the server does too).</summary>
    public static async Task<bool> ServeAsync(Stream stream, AccessKey key, ReadOnlyMemory<byte> hellos, ReadOnlyMemory<byte> channelBinding, CancellationToken cancellationToken)
    {
        byte[] serverNonce = RandomNumberGenerator.GetBytes(ProtocolConstants.NonceLength);
        await stream.WriteAsync(serverNonce, cancellationToken).ConfigureAwait(false);
        byte[] response = new byte[ResponseLength];
        await stream.ReadExactlyAsync(response, cancellationToken).ConfigureAwait(false);

        byte[] transcript = Transcript(hellos.Span, serverNonce, response.AsSpan(0, ProtocolConstants.NonceLength), channelBinding.Span);
        bool proven = CryptographicOperations.FixedTimeEquals(key.Prove(ClientLabel, transcript), response.AsSpan(ProtocolConstants.NonceLength));
        byte[] result = new byte[ResultLength];
        BinaryPrimitives.WriteUInt16BigEndian(result, (ushort)(proven ? StatusCode.Ok : StatusCode.AuthenticationFailed));
        if (proven)
        {
            key.Prove(ServerLabel, transcript).CopyTo(result, 2);
        }

        await stream.WriteAsync(result, cancellationToken).ConfigureAwait(false);
        return proven;
    }

    /// <summary>Runs the client's side.</summary>
    public static async Task<Outcome> ProveAsync(Stream stream, AccessKey key, ReadOnlyMemory<byte> hellos, ReadOnlyMemory<byte> channelBinding, CancellationToken cancellationToken)
    {
        byte[] serverNonce = new byte[ChallengeLength];
        await stream.ReadExactlyAsync(serverNonce, cancellationToken).ConfigureAwait(false);
        byte[] response = new byte[ResponseLength];
        RandomNumberGenerator.Fill(response.AsSpan(0, ProtocolConstants.NonceLength));
        byte[] transcript = Transcript(hellos.Span, serverNonce, response.AsSpan(0, ProtocolConstants.NonceLength), channelBinding.Span);
        key.Prove(ClientLabel, transcript).CopyTo(response, ProtocolConstants.NonceLength);
        await stream.WriteAsync(response, cancellationToken).ConfigureAwait(false);

        byte[] result = new byte[ResultLength];
        await stream.ReadExactlyAsync(result, cancellationToken).ConfigureAwait(false);
        if ((StatusCode)BinaryPrimitives.ReadUInt16BigEndian(result) != StatusCode.Ok)
        {
            return Outcome.KeyRejected;
        }

        return CryptographicOperations.FixedTimeEquals(key.Prove(ServerLabel, transcript), result.AsSpan(2))
            ? Outcome.Authenticated
            : Outcome.ServerNotProven;
    }

    private static byte[] Transcript(ReadOnlySpan<byte> hellos, ReadOnlySpan<byte> serverNonce, ReadOnlySpan<byte> clientNonce, ReadOnlySpan<byte> channelBinding)
    {
        byte[] transcript = new byte[hellos.Length + serverNonce.Length + clientNonce.Length + 1 + channelBinding.Length];
        var writer = new SpanWriter(transcript);
        writer.WriteBytes(hellos);
        writer.WriteBytes(serverNonce);
        writer.WriteBytes(clientNonce);
        writer.WriteByte((byte)channelBinding.Length);
        writer.WriteBytes(channelBinding);
        return transcript;
    }
}
