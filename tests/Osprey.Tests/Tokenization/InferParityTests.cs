using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.Cli;

namespace Osprey.Tests.Tokenization;

/// <summary>
/// <c>osprey infer --val_dataset</c> end to end with text: each tiny parity model, its tiny tokenizer and chat template,
/// greedy decoding, and the responses must be transformers' own (infer_golden.json from tools/make_infer_fixtures.py:
/// apply_chat_template, generate, decode(new tokens, skip_special_tokens=True)).
/// </summary>
public sealed class InferParityTests
{
    public static TheoryData<string> FamilyNames() => TinyTokenizerTests.FamilyNames();

    [Theory]
    [MemberData(nameof(FamilyNames))]
    public void Batch_infer_responses_are_transformers_responses(string family)
    {
        var golden = TinyTokenizerTests.Golden(family);
        var model = TinyTokenizerTests.Folder(family);
        var cases = golden.GetProperty("cases").EnumerateArray().ToArray();
        Assert.Contains(cases, c => c.GetProperty("settings").GetProperty("repetition_penalty").ValueKind == JsonValueKind.Number);

        // One CLI run per generation setting; the cases of a setting go through together, in file order.
        foreach (var group in cases.GroupBy(c => c.GetProperty("settings").GetRawText()))
        {
            var settings = group.First().GetProperty("settings");
            var rows = group.ToArray();
            using var temp = new TempDirectory();
            var input = temp.File("in.jsonl");
            var output = temp.File("out.jsonl");
            File.WriteAllLines(input, rows.Select(c => new JsonObject { ["messages"] = JsonNode.Parse(c.GetProperty("messages").GetRawText()) }
                .ToJsonString()));

            var args = new List<string>
            {
                "infer", "--model", model, "--val_dataset", input, "--result_path", output, "--device", "cpu",
                "--temperature", "0",
                "--max_new_tokens", settings.GetProperty("max_new_tokens").GetInt32().ToString(CultureInfo.InvariantCulture),
            };
            if (settings.GetProperty("repetition_penalty") is { ValueKind: JsonValueKind.Number } penalty)
                args.AddRange(["--repetition_penalty", penalty.GetDouble().ToString("R", CultureInfo.InvariantCulture)]);
            var stdout = new StringWriter();
            var stderr = new StringWriter();

            var exit = OspreyApp.Run(args.ToArray(), stdout, stderr);

            var run = $"osprey {string.Join(' ', args)}\nexit {exit}\n--- stdout\n{stdout}--- stderr\n{stderr}";
            Assert.True(exit == 0, run);
            Assert.True(File.Exists(output), $"no --result_path file written\n{run}");
            var lines = File.ReadAllLines(output).Where(l => l.Length > 0).ToArray();
            Assert.True(lines.Length == rows.Length, $"{rows.Length} input lines, {lines.Length} result lines\n{run}");
            for (var i = 0; i < rows.Length; i++)
            {
                var name = $"{family} [{rows[i].GetProperty("name").GetString()}] settings {settings.GetRawText()}";
                var result = JsonNode.Parse(lines[i])?.AsObject() ?? throw new InvalidOperationException($"{name}: result line {i} is null");
                Assert.True(JsonNode.DeepEquals(JsonNode.Parse(rows[i].GetProperty("messages").GetRawText()), result["messages"]),
                    $"{name}: the result line must carry the input's messages unchanged: {lines[i]}");
                var response = result["response"]?.GetValue<string>();
                var want = rows[i].GetProperty("response").GetString();
                Assert.True(want == response,
                    $"{name}: response {TokenizerParityTests.Show(response)}, transformers {TokenizerParityTests.Show(want)} " +
                    $"(transformers' new ids {rows[i].GetProperty("new_ids").GetRawText()}, finish {rows[i].GetProperty("finish").GetString()}; " +
                    $"prompt {TokenizerParityTests.Show(rows[i].GetProperty("prompt").GetString())})\n{run}");
            }
        }
    }
}
