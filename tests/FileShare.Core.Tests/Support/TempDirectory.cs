namespace FileShare.Tests.Support;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = SharePath.RealRoot(System.IO.Path.Join(System.IO.Path.GetTempPath(), "fileshare-tests", Guid.NewGuid().ToString("N")));
        Directory.CreateDirectory(Path);
    }

    /// <summary>Full path with links resolved, so it compares equal to what the server reports as its root.</summary>
    public string Path { get; }

    public string Create(string relative) => Directory.CreateDirectory(System.IO.Path.Join(Path, relative)).FullName;

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
