namespace Osprey.Datasets;

/// <summary>Encodes preference rows (chosen/rejected, as the dataset loader reads them) into pairs for preference training.</summary>
public static class PreferenceEncoding
{
    /// <summary>
    /// Each row's chosen conversation and its rejected one (the row's <see cref="DatasetRow.Rejected"/>), encoded by
    /// <paramref name="encoder"/> (use <c>--loss_scale last_round</c>, ms-swift's RLHF default, so only the final
    /// response carries labels). A pair is dropped, and counted in <paramref name="stats"/>, when either side is.
    /// </summary>
    /// <exception cref="OspreyException">A row has no rejected response; the message names the file and line.</exception>
    public static IReadOnlyList<PreferencePair> EncodePairs(DatasetEncoder encoder, IEnumerable<DatasetRow> rows, EncodingStats? stats = null)
    {
        var pairs = new List<PreferencePair>();
        foreach (var row in rows)
        {
            if (row.Rejected is null)
                throw new OspreyException($"{row.Where}: the row has no rejected response; preference training needs chosen/rejected pairs (\"chosen\"/\"rejected\" columns or \"rejected_response\"), see docs/datasets.md.");
            var chosen = encoder.Encode(row, stats);
            var rejected = encoder.Encode(row with { Conversation = row.Rejected });
            if (chosen is null || rejected is null) continue;
            pairs.Add(new PreferencePair(chosen, rejected, row.Margin));
        }
        return pairs;
    }

    /// <summary>
    /// KTO rows (a conversation plus a desirable/undesirable label, <see cref="DatasetRow.KtoLabel"/>) encoded with
    /// <paramref name="encoder"/>; rows the encoder drops are skipped.
    /// </summary>
    /// <exception cref="OspreyException">A row has no label; the message names the file and line.</exception>
    public static IReadOnlyList<KtoExample> EncodeKto(DatasetEncoder encoder, IEnumerable<DatasetRow> rows, EncodingStats? stats = null)
    {
        var examples = new List<KtoExample>();
        foreach (var row in rows)
        {
            if (row.KtoLabel is not bool desirable)
                throw new OspreyException($"{row.Where}: the row has no \"label\" (true for a desirable response, false for an undesirable one); KTO needs labelled rows, see docs/datasets.md.");
            if (encoder.Encode(row, stats) is { } sample) examples.Add(new KtoExample(sample, desirable));
        }
        return examples;
    }
}
