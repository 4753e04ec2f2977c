using FileShare.Client;

namespace FileShare.Core.Tests.Client;

public sealed class DownloadSourceTests
{
    [Theory]
    [InlineData("localhost")]
    [InlineData("files.example.com:5001")]
    [InlineData("docker_service")]
    [InlineData("bücher.example")]
    [InlineData("192.0.2.7:65535")]
    [InlineData("::1")]
    [InlineData("[::1]:5000")]
    [InlineData("fe80::1%eth0")]
    public void A_host_name_or_address_with_or_without_a_port_names_a_server(string computerName) =>
        Assert.Null(DownloadSource.ProblemWith(computerName));

    [Theory]
    [InlineData("http://files.example.com:5001/", "is a URL", "'files.example.com:5001'")]
    [InlineData("https://files.example.com/share", "is a URL", "'files.example.com'")]
    [InlineData("fileshare://[::1]:5000/a.txt", "is a URL", "'[::1]:5000'")]
    [InlineData(@"\\fileserver\public", "is a network path", "('fileserver')")]
    [InlineData("//fileserver/public", "is a network path", "('fileserver')")]
    [InlineData("/srv/public", "is a path", "-Name or -Path")]
    [InlineData(@"C:\public", "is a path", "-Name or -Path")]
    [InlineData("localhost/docs", "is a path", "-Name or -Path")]
    [InlineData("localhost:99999", "has port 99999", "1 to 65535")]
    [InlineData("[::1]:0", "has port 0", "1 to 65535")]
    [InlineData("user@files.example.com", "is not a host name or an IP address", "[address]:port")]
    [InlineData("files example", "is not a host name or an IP address", "[address]:port")]
    public void What_cannot_name_a_server_is_told_with_what_to_write_instead(string computerName, string what, string instead)
    {
        string? problem = DownloadSource.ProblemWith(computerName);

        Assert.NotNull(problem);
        Assert.StartsWith($"'{computerName}' {what}", problem);
        Assert.Contains(instead, problem);
    }
}
