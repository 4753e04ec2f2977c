namespace FileShare.PowerShell;

/// <summary>Human-readable sizes for progress and views; objects keep raw byte counts.</summary>
public static class Units
{
    private static readonly string[] Suffixes = ["B", "KiB", "MiB", "GiB", "TiB"];

    public static string Bytes(long count)
    {
        double value = count;
        int unit = 0;
        while (value >= 1024 && unit < Suffixes.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0 ? $"{count} B" : $"{value:0.0} {Suffixes[unit]}";
    }
}
