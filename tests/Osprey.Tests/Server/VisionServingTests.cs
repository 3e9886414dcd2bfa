using System.ClientModel;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI.Chat;
using Osprey.Inference;
using Osprey.Serving;

namespace Osprey.Tests.Server;

/// <summary>
/// <c>osprey deploy</c> of the tiny Qwen2-VL / Qwen2.5-VL fixtures (tests/fixtures/vl, made by
/// tools/make_vl_fixtures.py with transformers 5.17) on a real Kestrel, driven by the official OpenAI .NET client with
/// <c>image_url</c> parts. The expected replies are transformers' greedy ids of golden.json (decoded as the infer test
/// decodes them) and the expected prompt lengths its input_ids; images come as data URLs or, when allowed, over http
/// from a real listener on 127.0.0.1. Text and image requests run through the one batching engine.
/// </summary>
public sealed class VisionServingTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");
    static bool Present => File.Exists(Path.Combine(Root, "images", "images.json"));

    /// <summary>A golden.json case: its text with {img} marks, image files, transformers' reply and prompt length.</summary>
    sealed record Case(string Name, string Text, string[] Files, string Expected, int PromptTokens);

    static List<Case> Cases(string family)
    {
        var folder = Path.Combine(Root, family);
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "golden.json"))).RootElement;
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(folder, ""), folder, null);
        return golden.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("name").GetString()!,
            c.GetProperty("text").GetString()!,
            c.GetProperty("images").EnumerateArray().Select(f => Path.Combine(Root, "images", f.GetString()!)).ToArray(),
            chat.DecodeReply(c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), chat.StopIds([2])),
            c.GetProperty("input_ids").GetArrayLength())).ToList();
    }

    static string Mime(string file) => Path.GetExtension(file) == ".png" ? "image/png" : "image/jpeg";

    /// <summary>The case's user message: its text with an image part wherever {img} stands.</summary>
    static UserChatMessage Message(Case c, Func<string, ChatMessageContentPart> image)
    {
        var parts = new List<ChatMessageContentPart>();
        var pieces = c.Text.Split("{img}");
        for (var i = 0; i < pieces.Length; i++)
        {
            if (i > 0) parts.Add(image(c.Files[i - 1]));
            if (pieces[i].Length > 0) parts.Add(ChatMessageContentPart.CreateTextPart(pieces[i]));
        }
        return new UserChatMessage(parts);
    }

    static ChatMessageContentPart DataUrl(string file) => ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(File.ReadAllBytes(file)), Mime(file));

    static ChatCompletionOptions Greedy8 => new() { MaxOutputTokenCount = 8, Temperature = 0 };

    [Theory]
    [InlineData("qwen2_vl")]
    [InlineData("qwen2_5_vl")]
    public async Task DataUrlImages_AnswerAsTransformers_AloneAndMixedWithTextRequests(string family)
    {
        if (!Present) return;
        var cases = Cases(family);
        await using var server = await TestServer.StartAsync(folder: Path.Combine(Root, family));
        var client = server.Chat();
        Assert.True(server.Model.Engine.Model.IsVisionLanguage);

        // Alone: one image request, then a text-only one, each as transformers answers it.
        foreach (var c in new[] { cases.First(x => x.Name == "two_images"), cases.First(x => x.Files.Length == 0) })
        {
            ChatCompletion reply = await client.CompleteChatAsync([Message(c, DataUrl)], Greedy8);
            Assert.Equal(c.Expected, reply.Content[0].Text);
            Assert.Equal(c.PromptTokens, reply.Usage.InputTokenCount);
        }

        // Together: every case at once (images of several sizes and a text-only prompt), one streamed, so prefills
        // with images and decode steps of text rows share the engine; each reply is still its own.
        var replies = cases.Select(async (c, i) =>
        {
            if (i % 2 == 1)
            {
                var text = new System.Text.StringBuilder();
                await foreach (var u in client.CompleteChatStreamingAsync([Message(c, DataUrl)], Greedy8))
                    foreach (var part in u.ContentUpdate) text.Append(part.Text);
                return text.ToString();
            }
            ChatCompletion r = await client.CompleteChatAsync([Message(c, DataUrl)], Greedy8);
            return r.Content[0].Text;
        }).ToList();
        var got = await Task.WhenAll(replies);
        for (var i = 0; i < cases.Count; i++) Assert.True(cases[i].Expected == got[i], $"{family}/{cases[i].Name}: expected '{cases[i].Expected}', got '{got[i]}'");
        var stats = await server.WaitIdleAsync();
        Assert.Equal(0, stats.SlotsInUse);
    }

    [Fact]
    public async Task ImageRequest_JoiningARunningTextRequest_LeavesBothRepliesAsAlone()
    {
        if (!Present) return;
        var cases = Cases("qwen2_vl");
        var c = cases.First(x => x.Name == "one_image");
        var textCase = cases.First(x => x.Files.Length == 0);
        await using var server = await TestServer.StartAsync(folder: Path.Combine(Root, "qwen2_vl"));
        var model = server.Model;
        // A long text reply (ignore_eos: it runs 400 steps) alone, as the reference for itself.
        var textPrompt = model.EncodeChat([new ChatTurn { Role = "user", Content = textCase.Text }], null);
        var longText = model.Sampling(maxTokens: 400, ignoreEos: true);
        var alone = await model.Engine.GenerateAsync(new EngineRequest(textPrompt, longText));
        Assert.Equal(400, alone.Tokens.Count);

        // Again, and once its first token is out (its row is decoding), an image request joins the batch.
        var text = new System.Text.StringBuilder();
        await using var running = model.Engine.Submit(new EngineRequest(textPrompt, longText)).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        text.Append(running.Current.TextDelta);
        var vision = model.Vision!;
        var images = c.Files.Select(f => vision.Prepare(File.ReadAllBytes(f), f)).ToList();
        var imagePrompt = model.EncodeChat([new ChatTurn { Role = "user", Content = c.Text.Replace("{img}", ServedModel.ImagePlaceholder, StringComparison.Ordinal) }], null, images);
        Assert.Equal(c.PromptTokens, imagePrompt.Length);
        var withImage = await model.Engine.GenerateAsync(new EngineRequest(imagePrompt, model.Sampling(maxTokens: 8), null, images));
        // The image reply came while the text request was still running (it had not made all its 400 tokens), so the
        // two rows shared decode steps.
        Assert.True(model.Engine.Stats.GeneratedTokens < 400 + 400 + 8, $"{model.Engine.Stats.GeneratedTokens} tokens generated");
        Assert.Equal(c.Expected, withImage.Text);
        while (await running.MoveNextAsync()) text.Append(running.Current.TextDelta);
        Assert.Equal(alone.Text, text.ToString());
    }

    [Fact]
    public async Task RemoteUrls_AreRefusedWithoutTheFlag_AndBadImagesAre400sNamingThePart()
    {
        if (!Present) return;
        var c = Cases("qwen2_vl").First(x => x.Name == "two_images");
        await using var server = await TestServer.StartAsync(folder: Path.Combine(Root, "qwen2_vl"));
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => server.Chat().CompleteChatAsync(
            [Message(c, f => f == c.Files[0] ? ChatMessageContentPart.CreateImagePart(new Uri("http://127.0.0.1:9/tall.jpg")) : DataUrl(f))], Greedy8));
        Assert.Equal(400, refused.Status);
        Assert.Contains("--allow_remote_images", refused.Message, StringComparison.Ordinal);

        async Task<string?> Param(string url)
        {
            var body = new JsonObject
            {
                ["max_tokens"] = 4,
                ["messages"] = new JsonArray(new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "text", ["text"] = "Look: " },
                        new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } }),
                }),
            };
            var (status, json, _) = await server.PostAsync("/v1/chat/completions", body.ToJsonString());
            Assert.Equal(400, status);
            return TestServer.AssertError(json).GetProperty("param").GetString();
        }
        Assert.Equal("messages[0].content[1].image_url.url", await Param("http://127.0.0.1:9/tall.jpg"));
        Assert.Equal("messages[0].content[1].image_url.url", await Param("/etc/hostname"));
        Assert.Equal("messages[0].content[1].image_url.url", await Param("data:image/png;base64,@@@"));
        // Valid base64 that is no image: the decoder's error, naming the part.
        Assert.Equal("messages[0].content[1].image_url.url", await Param("data:image/png;base64," + Convert.ToBase64String("not an image"u8.ToArray())));
        // The server still answers after the refusals.
        ChatCompletion ok = await server.Chat().CompleteChatAsync([Message(c, DataUrl)], Greedy8);
        Assert.Equal(c.Expected, ok.Content[0].Text);
    }

    [Fact]
    public async Task RemoteImages_WhenAllowed_AnswerAsTransformers_WithinTheCountAndSizeLimits()
    {
        if (!Present) return;
        var c = Cases("qwen2_vl").First(x => x.Name == "two_images");
        using var listener = new HttpListener();
        var port = FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var serving = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await listener.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
                var bytes = File.ReadAllBytes(Path.Combine(Root, "images", ctx.Request.Url!.AbsolutePath.TrimStart('/')));
                ctx.Response.ContentLength64 = bytes.Length;
                await ctx.Response.OutputStream.WriteAsync(bytes);
                ctx.Response.Close();
            }
        });
        var big = new FileInfo(Path.Combine(Root, "images", "wide.png")).Length;
        var limit = c.Files.Max(f => new FileInfo(f).Length);
        Assert.True(big > limit, "the fixture's wide.png must be larger than the two_images files for this test");
        await using var server = await TestServer.StartAsync(folder: Path.Combine(Root, "qwen2_vl"),
            images: new ImageRequestOptions { AllowRemote = true, MaxImages = 2, MaxImageBytes = limit });
        var client = server.Chat();
        var url = $"http://127.0.0.1:{port}/";
        ChatCompletion reply = await client.CompleteChatAsync([Message(c, f => ChatMessageContentPart.CreateImagePart(new Uri(url + Path.GetFileName(f))))], Greedy8);
        Assert.Equal(c.Expected, reply.Content[0].Text);

        // Over the byte limit, fetched or as a data URL.
        foreach (var image in new[] { ChatMessageContentPart.CreateImagePart(new Uri(url + "wide.png")), DataUrl(Path.Combine(Root, "images", "wide.png")) })
        {
            var tooBig = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync(
                [Message(c, f => f == c.Files[0] ? image : DataUrl(f))], Greedy8));
            Assert.Equal(400, tooBig.Status);
            Assert.Contains(limit.ToString(System.Globalization.CultureInfo.InvariantCulture), tooBig.Message, StringComparison.Ordinal);
        }

        // Over the count limit.
        var three = new UserChatMessage(Enumerable.Range(0, 3).Select(_ => DataUrl(c.Files[1])));
        var many = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([three], Greedy8));
        Assert.Equal(400, many.Status);
        Assert.Contains("at most 2", many.Message, StringComparison.Ordinal);
        listener.Stop();
        await serving;
    }

    [Fact]
    public async Task TextModel_RefusesImageParts()
    {
        await using var server = await TestServer.StartAsync();
        var (status, json, _) = await server.PostAsync("/v1/chat/completions",
            """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}""");
        Assert.Equal(400, status);
        Assert.Equal("messages[0].content[0].type", TestServer.AssertError(json).GetProperty("param").GetString());
    }

    static int FreePort()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
