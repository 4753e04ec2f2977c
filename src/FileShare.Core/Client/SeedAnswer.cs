namespace FileShare.Client;

/// <summary>The original program's replies: "ok" then the bytes, "-1e" not found, "-2e" server error.</summary>
internal static class SeedAnswer
{
    public static bool Looks(ReadOnlySpan<byte> reply) =>
        reply.StartsWith("ok"u8) || reply.StartsWith("-1"u8) || reply.StartsWith("-2"u8);
}
