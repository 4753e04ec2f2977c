namespace FileShare.PowerShell.Tests.Support;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        // Links resolved, so paths compare equal to the roots servers report.
        Path = SharePath.RealRoot(System.IO.Path.Join(System.IO.Path.GetTempPath(), "fileshare-ps-tests", Guid.NewGuid().ToString("N")));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Creates (if needed) and returns a sub-folder.</summary>
    public string Folder(string relative) => Directory.CreateDirectory(Join(relative)).FullName;

    public string Join(string relative) => System.IO.Path.Join(Path, relative);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
