using System.Collections;
using System.Management.Automation;

namespace FileShare.PowerShell;

/// <summary>
/// Lets "-Port 5000..5009" work as typed: in argument mode PowerShell passes the range as the string "5000..5009",
/// which this expands; numbers, arrays and "5000,5001" pass through to normal binding.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class PortRangeAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        if (value is string text)
        {
            return Expand(text);
        }

        if (value is IEnumerable items and not string)
        {
            var ports = new List<object>();
            foreach (object? item in items)
            {
                object element = item is PSObject inner ? inner.BaseObject : item!;
                if (element is string part)
                {
                    ports.AddRange(Expand(part).Cast<object>());
                }
                else
                {
                    ports.Add(element);
                }
            }

            return ports.ToArray();
        }

        return inputData;
    }

    private static int[] Expand(string text)
    {
        int dots = text.IndexOf("..", StringComparison.Ordinal);
        if (dots > 0 && int.TryParse(text.AsSpan(0, dots), out int first) && int.TryParse(text.AsSpan(dots + 2), out int last))
        {
            int step = first <= last ? 1 : -1;
            int count = Math.Abs(last - first) + 1;
            if (count > 65536)
            {
                throw new ArgumentTransformationMetadataException($"The port range '{text}' is larger than the port space.");
            }

            return Enumerable.Range(0, count).Select(i => first + (i * step)).ToArray();
        }

        if (int.TryParse(text, out int single))
        {
            return [single];
        }

        throw new ArgumentTransformationMetadataException($"'{text}' is not a port or a port range such as 5000..5009.");
    }
}
