using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI.Chat;
using Osprey.Hub;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Serving;
using Osprey.Tests.Serving;

namespace Osprey.Tests.Server;

/// <summary>
/// LLaVA and LLaVA-NeXT served and inferred end to end, as Qwen2-VL is (tests/fixtures/vl/llava_*, tiny random models
/// made by tools/make_llava_fixtures.py with transformers 5.17). Every expected reply is transformers' greedy ids of the
/// case in golden.json (<c>model.generate(..., do_sample=False, max_new_tokens=8)</c>) and every expected prompt its
/// processor's input_ids: through the batching engine alone and mixed with the other cases (image and text rows in one
/// batch), through <c>osprey deploy</c> with the official OpenAI client's image_url parts, through
/// <see cref="OspreyChatClient"/> with DataContent, and through the interactive <c>osprey infer</c> chat's
/// <c>&lt;image&gt;</c> tags.
/// </summary>
public sealed class LlavaServingTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static string ImagesDir => Path.Combine(Root, "llava_images");
    static bool Present => File.Exists(Path.Combine(ImagesDir, "images.json"));

    /// <summary>A golden.json case: text with &lt;image&gt; tags, image files, transformers' prompt ids and greedy ids.</summary>
    sealed record Case(string Name, string Text, string[] Files, int[] PromptIds, int[] Greedy);

    static List<Case> Cases(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, family, "golden.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("name").GetString()!,
            c.GetProperty("text").GetString()!,
            c.GetProperty("images").EnumerateArray().Select(f => Path.Combine(ImagesDir, f.GetString()!)).ToArray(),
            c.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray())).ToList();
    }

    static string Expected(string family, Case c)
    {
        var dir = Path.Combine(Root, family);
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(dir, ""), dir, null);
        return chat.DecodeReply(c.Greedy, chat.StopIds([2]));
    }

    static string Mime(string file) => Path.GetExtension(file) == ".png" ? "image/png" : "image/jpeg";

    [Theory]
    [InlineData("llava_clip")]
    [InlineData("llava_siglip")]
    [InlineData("llava_next")]
    public async Task Engine_ImageAndTextRequests_AloneAndBatched_GiveTransformersGreedyIds(string family)
    {
        if (!Present) return;
        var cases = Cases(family);
        using var model = ServedModel.Load(Path.Combine(Root, family), ChatClientTests.Cpu, new ServeOptions { Engine = new EngineOptions { MaxBatchSize = 8 } });
        Assert.True(model.Engine.Model.IsVisionLanguage);
        var requests = cases.Select(c =>
        {
            var images = c.Files.Select(f => model.Vision!.Prepare(File.ReadAllBytes(f), f)).ToList();
            var turn = new ChatTurn { Role = "user", Content = c.Text.Replace("<image>", ServedModel.ImagePlaceholder, StringComparison.Ordinal) };
            var prompt = images.Count > 0 ? model.EncodeChat([turn], null, images) : model.EncodeChat([turn], null);
            Assert.True(c.PromptIds.SequenceEqual(prompt), $"{family}/{c.Name}: prompt ids differ from the processor's");
            return new EngineRequest(prompt, model.Sampling(maxTokens: c.Greedy.Length), null, images.Count > 0 ? images : null);
        }).ToList();

        // Alone, one after another.
        for (var i = 0; i < cases.Count; i++)
        {
            var alone = await model.Engine.GenerateAsync(requests[i]);
            Assert.True(cases[i].Greedy.SequenceEqual(alone.Tokens.Select(t => t.TokenId)), $"{family}/{cases[i].Name} alone: [{string.Join(", ", alone.Tokens.Select(t => t.TokenId))}]");
        }
        // All at once: image prefills and text rows share the engine's decode steps.
        var together = await Task.WhenAll(requests.Select(r => model.Engine.GenerateAsync(r)));
        for (var i = 0; i < cases.Count; i++)
            Assert.True(cases[i].Greedy.SequenceEqual(together[i].Tokens.Select(t => t.TokenId)), $"{family}/{cases[i].Name} batched: [{string.Join(", ", together[i].Tokens.Select(t => t.TokenId))}]");
    }

    [Fact]
    public async Task Deploy_ImageUrlParts_AnswerAsTransformers_WithATextRequestAlongside()
    {
        if (!Present) return;
        const string family = "llava_next";
        var cases = Cases(family);
        await using var server = await TestServer.StartAsync(folder: Path.Combine(Root, family));
        var client = server.Chat();
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 };
        UserChatMessage Message(Case c)
        {
            var parts = new List<ChatMessageContentPart>();
            var pieces = c.Text.Split("<image>");
            for (var i = 0; i < pieces.Length; i++)
            {
                if (i > 0) parts.Add(ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(File.ReadAllBytes(c.Files[i - 1])), Mime(c.Files[i - 1])));
                if (pieces[i].Length > 0) parts.Add(ChatMessageContentPart.CreateTextPart(pieces[i]));
            }
            return new UserChatMessage(parts);
        }
        var picked = new[] { cases.First(x => x.Name == "mid_strip"), cases.First(x => x.Files.Length == 0), cases.First(x => x.Name == "one_image") };
        var replies = await Task.WhenAll(picked.Select(async c => (ChatCompletion)await client.CompleteChatAsync([Message(c)], options)));
        for (var i = 0; i < picked.Length; i++)
        {
            Assert.Equal(Expected(family, picked[i]), replies[i].Content[0].Text);
            Assert.Equal(picked[i].PromptIds.Length, replies[i].Usage.InputTokenCount);
        }
    }

    [Fact]
    public async Task ChatClient_DataContentImages_AnswerAsTransformers()
    {
        if (!Present) return;
        const string family = "llava_siglip";
        var c = Cases(family).First(x => x.Name == "two_images");
        Assert.Equal("Compare <image> and <image> please.", c.Text);
        using var client = OspreyChatClient.Load(Path.Combine(Root, family), ChatClientTests.Cpu);
        var message = new Microsoft.Extensions.AI.ChatMessage(ChatRole.User, [
            new TextContent("Compare "), new DataContent(File.ReadAllBytes(c.Files[0]), Mime(c.Files[0])),
            new TextContent(" and "), new DataContent(File.ReadAllBytes(c.Files[1]), Mime(c.Files[1])), new TextContent(" please.")]);
        var response = await client.GetResponseAsync([message], new ChatOptions { MaxOutputTokens = 8, Temperature = 0 });
        Assert.Equal(Expected(family, c), response.Text);
        Assert.Equal(c.PromptIds.Length, response.Usage?.InputTokenCount);
    }

    [Fact]
    public void InteractiveChat_AsksForEachImageTag_AndAnswersWithTransformersGreedyIds()
    {
        if (!Present) return;
        const string family = "llava_clip";
        // "Compare <image> and <image> please.": the chat asks for each tag's image on the next line.
        var cTwo = Cases(family).First(x => x.Name == "two_images");
        var stdin = new StringReader($"{cTwo.Text}\n{cTwo.Files[0]}\n{cTwo.Files[1]}\n");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var options = new InferOptions
        {
            Model = new ModelOptions { Device = "cpu", TorchDtype = "float32" },
            ModelFolder = Path.Combine(Root, family),
            MaxNewTokens = 8,
        };
        Assert.Equal(0, Infer.Run(options, () => throw new InvalidOperationException("not a text model"), stdin, stdout, stderr));
        Assert.Equal(Expected(family, cTwo) + Environment.NewLine, stdout.ToString());
        Assert.Equal(2, stderr.ToString().Split("Input an image path or URL <<< ").Length - 1);
    }
}
