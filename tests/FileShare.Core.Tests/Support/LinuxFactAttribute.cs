namespace FileShare.Tests.Support;

/// <summary>A fact that only means something on Linux (it relies on /proc or on file names being plain bytes).</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute(string why)
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = why;
        }
    }
}
