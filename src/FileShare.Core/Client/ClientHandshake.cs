using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>
/// Opens a FileShare connection on a connected socket: the versioned hellos, TLS when granted, then the mutual proof
/// of the access key, all within one read timeout. Every refusal is a FileShareException naming the server and comes
/// before any request is sent.
/// </summary>
internal sealed class ClientHandshake(string host, string endpoint, FileShareClientOptions options)
{
    /// <summary>
    /// Shakes hands over <paramref name="socket"/>, which it takes over: on success it returns the stream to send requests
    /// on (TLS over the socket, when granted) and the features the server granted (which piece hashes its digests may
    /// use); on failure the socket is closed.
    /// </summary>
    public async Task<(Stream Stream, HandshakeFeatures Granted)> OpenAsync(Socket socket, CancellationToken cancellationToken)
    {
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ReadTimeout);
        try
        {
            // Both hellos, the client's first: the access-key proofs cover them, so a downgraded feature set fails the proof.
            byte[] hellos = new byte[2 * ProtocolConstants.HelloLength];
            HandshakeFeatures granted;
            try
            {
                granted = await ExchangeHellosAsync(stream, hellos, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                // What a service of another kind does (an HTTP server waits for its request line): say so, as for one that answers.
                throw new FileShareException(FileShareErrorKind.Timeout,
                    $"No answer from {endpoint} to the FileShare handshake in time (read timeout {options.ReadTimeout.TotalSeconds:0.#} s); is it a FileShare server?", endpoint, null, e);
            }

            byte[] channelBinding = [];
            if (granted.HasFlag(HandshakeFeatures.Tls))
            {
                (stream, channelBinding) = await StartTlsAsync(stream, deadline.Token).ConfigureAwait(false);
            }

            if (granted.HasFlag(HandshakeFeatures.AccessKey))
            {
                await ProveAccessKeyAsync(stream, hellos, channelBinding, deadline.Token).ConfigureAwait(false);
            }

            return (stream, granted);
        }
        catch (Exception e)
        {
            stream.Dispose();
            if (ConnectionErrors.Translate(e, cancellationToken, endpoint, options.ReadTimeout, path: null) is { } translated)
            {
                throw translated;
            }

            throw;
        }
    }

    /// <summary>Sends the client's hello from the first half of <paramref name="hellos"/>, reads the server's into the second, and returns what the server granted.</summary>
    private async Task<HandshakeFeatures> ExchangeHellosAsync(Stream stream, byte[] hellos, CancellationToken cancellationToken)
    {
        HandshakeFeatures asked = HandshakeFeatures.PieceAlgorithms | HandshakeFeatures.FastPieceHashes
            | (options.AccessKey is null ? HandshakeFeatures.None : HandshakeFeatures.AccessKey)
            | (options.UsesTls ? HandshakeFeatures.Tls : HandshakeFeatures.None);
        Messages.WriteClientHello(hellos, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, (uint)asked);
        await stream.WriteAsync(hellos.AsMemory(0, ProtocolConstants.HelloLength), cancellationToken).ConfigureAwait(false);
        Memory<byte> serverHello = hellos.AsMemory(ProtocolConstants.HelloLength);
        int received = await stream.ReadAtLeastAsync(serverHello, serverHello.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (received < serverHello.Length || !Messages.StartsWithMagic(serverHello.Span))
        {
            throw SeedAnswer.Looks(serverHello.Span[..received])
                ? SeedServerAnswered()
                : new FileShareException(FileShareErrorKind.ProtocolError, $"{endpoint} did not answer the FileShare handshake; is it a FileShare server?", endpoint);
        }

        (ushort version, ushort status, uint features) = Messages.ReadHello(serverHello.Span);
        ThrowIfRefused((StatusCode)status, version);
        var granted = (HandshakeFeatures)features;
        if ((granted & ~asked) != 0)
        {
            throw new ProtocolException($"the server granted features {granted} that were not asked for ({asked})");
        }

        if (asked.HasFlag(HandshakeFeatures.Tls) && !granted.HasFlag(HandshakeFeatures.Tls))
        {
            throw new FileShareException(FileShareErrorKind.TlsFailed, $"{endpoint} does not offer TLS (it was started without -Certificate or -SelfSigned); nothing was sent.", endpoint);
        }

        if (asked.HasFlag(HandshakeFeatures.AccessKey) && !granted.HasFlag(HandshakeFeatures.AccessKey))
        {
            throw new FileShareException(FileShareErrorKind.AuthenticationFailed, $"{endpoint} holds no access key, so it cannot prove it is the server that shares this key; nothing was requested from it.", endpoint);
        }

        return granted;
    }

    private FileShareException SeedServerAnswered() =>
        options.AccessKey is not null || options.UsesTls
            ? new FileShareException(options.AccessKey is not null ? FileShareErrorKind.AuthenticationFailed : FileShareErrorKind.TlsFailed,
                $"{endpoint} speaks only the original FileShare protocol, which has neither access keys nor TLS; nothing was requested from it.", endpoint)
            : new FileShareException(FileShareErrorKind.NotSupportedBySeedServer, $"{endpoint} speaks only the original FileShare protocol, which can fetch a named file but cannot list or stat.", endpoint);

    private void ThrowIfRefused(StatusCode status, ushort version)
    {
        switch (status)
        {
            case StatusCode.AuthenticationRequired:
                throw new FileShareException(FileShareErrorKind.AuthenticationRequired,
                    $"{endpoint} requires an access key: give -AccessKey or -AccessKeyPath, or set $env:FILESHARE_ACCESS_KEY.", endpoint);
            case StatusCode.TlsRequired:
                throw new FileShareException(FileShareErrorKind.TlsRequired,
                    $"{endpoint} accepts only TLS connections: add -CertificateThumbprint <its SHA-256 thumbprint>, or -UseTls when its certificate is trusted by this system.", endpoint);
            default:
                ConnectionErrors.ThrowIfFailed(status, $"handshake refused (protocol version {version})", endpoint, path: null);
                return;
        }
    }

    /// <summary>Switches to TLS over <paramref name="stream"/>; the channel binding is SHA-256 of the certificate the server presented.</summary>
    private async Task<(SslStream Tls, byte[] ChannelBinding)> StartTlsAsync(Stream stream, CancellationToken cancellationToken)
    {
        var pin = new CertificatePin(options.CertificateThumbprint);
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                RemoteCertificateValidationCallback = pin.Validate,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            tls.Dispose();
            if (e is AuthenticationException)
            {
                throw new FileShareException(FileShareErrorKind.TlsFailed,
                    pin.Seen is null ? $"TLS with {endpoint} failed: {e.Message}" : $"{endpoint} was refused: {pin.Describe()}; nothing was requested from it.", endpoint, inner: e);
            }

            throw;
        }

        return (tls, MutualAuthentication.ChannelBinding(tls.RemoteCertificate));
    }

    private async Task ProveAccessKeyAsync(Stream stream, byte[] hellos, byte[] channelBinding, CancellationToken cancellationToken)
    {
        MutualAuthentication.Outcome outcome = await MutualAuthentication.ProveAsync(stream, options.AccessKey!, hellos, channelBinding, cancellationToken).ConfigureAwait(false);
        if (outcome != MutualAuthentication.Outcome.Authenticated)
        {
            throw new FileShareException(FileShareErrorKind.AuthenticationFailed, outcome == MutualAuthentication.Outcome.KeyRejected
                ? $"{endpoint} refused the access key: it holds a different one."
                : $"{endpoint} did not prove it holds the access key (a different key, or something in between); nothing was requested from it.", endpoint);
        }
    }
}
