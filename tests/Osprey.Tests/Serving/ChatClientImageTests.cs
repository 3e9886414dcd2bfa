using System.Text.Json;
using Microsoft.Extensions.AI;
using Osprey.Inference;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>
/// <see cref="OspreyChatClient"/> over the tiny Qwen2-VL fixture (tests/fixtures/vl, made by transformers 5.17) with
/// image <see cref="DataContent"/> in a message: the reply is transformers' greedy reply of golden.json's
/// "two_images" case (decoded as the infer test decodes it). A text model refuses images; links are not fetched.
/// </summary>
public sealed class ChatClientImageTests
{
    static string Root => Path.Combine(TestPaths.Fixtures, "vl");

    [Fact]
    public async Task DataContentImages_AnswerAsTransformers()
    {
        if (!File.Exists(Path.Combine(Root, "images", "images.json"))) return;
        var folder = Path.Combine(Root, "qwen2_vl");
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "golden.json"))).RootElement;
        var c = golden.GetProperty("cases").EnumerateArray().First(x => x.GetProperty("name").GetString() == "two_images");
        var chat = ChatPrompt.Create(ChatPrompt.LoadTokenizer(folder, ""), folder, null);
        var expected = chat.DecodeReply(c.GetProperty("greedy_new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), chat.StopIds([2]));
        // "Compare {img} and {img} please." with tall.jpg and small_gray.png.
        Assert.Equal("Compare {img} and {img} please.", c.GetProperty("text").GetString());
        var files = c.GetProperty("images").EnumerateArray().Select(f => Path.Combine(Root, "images", f.GetString()!)).ToArray();

        using var client = OspreyChatClient.Load(folder, ChatClientTests.Cpu);
        var message = new ChatMessage(ChatRole.User, [
            new TextContent("Compare "), new DataContent(File.ReadAllBytes(files[0]), "image/jpeg"),
            new TextContent(" and "), new DataContent(File.ReadAllBytes(files[1]), "image/png"), new TextContent(" please.")]);
        var response = await client.GetResponseAsync([message], new ChatOptions { MaxOutputTokens = 8, Temperature = 0 });
        Assert.Equal(expected, response.Text);
        Assert.Equal(c.GetProperty("input_ids").GetArrayLength(), response.Usage?.InputTokenCount);

        var link = new ChatMessage(ChatRole.User, [new TextContent("What is it?"), new UriContent(new Uri("http://127.0.0.1:9/a.png"), "image/png")]);
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync([link]));
        Assert.Contains("DataContent", e.Message, StringComparison.Ordinal);
    }
}
