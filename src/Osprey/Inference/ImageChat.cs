using Osprey.Datasets;
using Osprey.Images;

namespace Osprey.Inference;

/// <summary>
/// The interactive image chat of <c>osprey infer</c> for every vision-language family, as ms-swift's infer runs it:
/// each <c>&lt;image&gt;</c> tag of a question asks for its image on the next input line ("Input an image path or URL
/// &lt;&lt;&lt; "; here a path or a data: URL); <c>--images</c> belong to the first question (in front of it when it has
/// no tags). A bad image drops that question only. <c>clear</c> starts over, <c>exit</c>/<c>quit</c> end.
/// </summary>
internal static class ImageChat
{
    /// <summary>Runs the chat; <paramref name="answer"/> replies to the history (tags in the text) with its images in order.</summary>
    public static void Run(TextReader stdin, TextWriter stdout, TextWriter stderr, IReadOnlyList<ProcessedImage> given,
        Func<string, string, ProcessedImage> load, Func<IReadOnlyList<(string Role, string Text)>, IReadOnlyList<ProcessedImage>, string> answer)
    {
        var history = new List<(string Role, string Text)>();
        var images = new List<ProcessedImage>();
        var first = true;
        var asked = 0;
        while (stdin.ReadLine() is { } line)
        {
            var q = line.Trim();
            if (q is "exit" or "quit") break;
            if (q.Length == 0) continue;
            if (q == "clear") { history.Clear(); images.Clear(); first = true; continue; }
            asked++;
            var tags = q.Split(MultimodalRow.ImageTag).Length - 1;
            if (first && tags == 0) (q, tags) = (string.Concat(Enumerable.Repeat(MultimodalRow.ImageTag, given.Count)) + q, given.Count);
            var fromFlag = first ? given.Count : 0;
            var added = new List<ProcessedImage>();
            try
            {
                if (fromFlag > tags)
                    throw new OspreyException($"question {asked} has {tags} {MultimodalRow.ImageTag} tag(s) but --images gives {fromFlag}; put one tag where each image goes, or none to have them all first.");
                added.AddRange(given.Take(fromFlag));
                for (var k = fromFlag; k < tags; k++)
                {
                    stderr.Write("Input an image path or URL <<< ");
                    var reference = stdin.ReadLine()?.Trim();
                    if (string.IsNullOrEmpty(reference)) throw new OspreyException($"question {asked}: no image given for {MultimodalRow.ImageTag} tag {k + 1}; type a file path or a data: URL after the question.");
                    added.Add(load(reference, $"question {asked}, image {k + 1}"));
                }
            }
            catch (OspreyException e)
            {
                stderr.WriteLine(e.Message);
                continue;
            }
            images.AddRange(added);
            history.Add(("user", q));
            var reply = answer(history, images);
            first = false;
            history.Add(("assistant", reply));
            stdout.WriteLine(reply);
        }
    }
}
