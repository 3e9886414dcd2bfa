namespace Osprey.Datasets;

/// <summary>One KTO example: a conversation encoded with labels on its last response, and whether that response is desirable.</summary>
public sealed record KtoExample(EncodedSample Sample, bool Desirable)
{
    /// <summary>The number of leading tokens that carry no label: the prompt, which KTO's KL rows pair with another example's response.</summary>
    public int PromptLength
    {
        get
        {
            var labels = Sample.Labels;
            for (var i = 0; i < labels.Length; i++)
                if (labels[i] != EncodedSample.IgnoreIndex) return i;
            return labels.Length;
        }
    }

    /// <summary>
    /// This example's prompt followed by <paramref name="other"/>'s response (labels on the response): the mismatched
    /// pair from which KTO estimates the KL term (Ethayarajh et al. 2024; TRL's KTOTrainer builds it the same way).
    /// </summary>
    public EncodedSample MismatchedWith(KtoExample other)
    {
        var p = PromptLength;
        var q = other.PromptLength;
        var ids = Sample.InputIds[..p].Concat(other.Sample.InputIds[q..]).ToArray();
        var labels = Enumerable.Repeat(EncodedSample.IgnoreIndex, p).Concat(other.Sample.Labels[q..]).ToArray();
        return new EncodedSample(ids, labels);
    }
}
