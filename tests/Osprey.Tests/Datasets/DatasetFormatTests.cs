using Osprey.Datasets;
using static Osprey.Tests.Datasets.DatasetTestHelpers;

namespace Osprey.Tests.Datasets;

public sealed class DatasetFormatTests
{
    [Fact]
    public void Messages_KeepsSystemToolCallsAndTools()
    {
        var log = new StringWriter();
        var rows = Rows(new DatasetOptions { Datasets = [Example("messages.jsonl")], Shuffle = false }, log);
        Assert.Equal(12, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Messages, r.Format));
        Assert.Contains("format messages", log.ToString(), StringComparison.Ordinal);
        Assert.Equal(Norm("""[{"role":"system","content":"You are a concise science tutor."},{"role":"user","content":"What is the boiling point of water at sea level?"},{"role":"assistant","content":"Water boils at 100 degrees Celsius (212 °F) at sea level."}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Name the largest planet in the solar system."},{"role":"assistant","content":"Jupiter is the largest planet in the solar system."}]"""), Json(rows[1].Conversation));
        var tool = rows[10];
        Assert.Equal(Norm("""[{"role":"user","content":"What's the weather in Lisbon?"},{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Lisbon"}}}]},{"role":"tool","content":"{\"temp_c\": 21, \"sky\": \"clear\"}"},{"role":"assistant","content":"It is 21 °C and clear in Lisbon."}]"""), Json(tool.Conversation));
        Assert.Equal(Norm("""[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"""), Json(tool.Conversation!.Tools));
        Assert.Equal(4, rows[11].Conversation!.Messages.Count);
        Assert.Equal(Example("messages.jsonl") + " line 3", rows[2].Where);
    }

    [Fact]
    public void ShareGpt_MapsRolesAndSystem()
    {
        var rows = Rows(Example("sharegpt.jsonl"));
        Assert.Equal(11, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.ShareGpt, r.Format));
        Assert.Equal(Norm("""[{"role":"system","content":"Answer in one sentence."},{"role":"user","content":"What is the boiling point of water at sea level?"},{"role":"assistant","content":"Water boils at 100 degrees Celsius (212 °F) at sea level."}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Convert 3 km to miles."},{"role":"tool_call","content":"{\"name\": \"convert_units\", \"arguments\": {\"value\": 3, \"from\": \"km\", \"to\": \"mi\"}}"},{"role":"tool_response","content":"{\"result\": 1.864}"},{"role":"assistant","content":"3 km is about 1.86 miles."}]"""), Json(rows[10].Conversation));
        Assert.Equal(Norm("""[{"type":"function","function":{"name":"convert_units","parameters":{"type":"object"}}}]"""), Json(rows[10].Conversation!.Tools));
    }

    [Fact]
    public void Alpaca_JoinsInstructionAndInput_HistoryAndSystem()
    {
        var rows = Rows(Example("alpaca.json"));
        Assert.Equal(11, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Alpaca, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"Translate the sentence to French.\nGood morning, friends."},{"role":"assistant","content":"Bonjour, les amis."}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"List three primary colors."},{"role":"assistant","content":"Red, blue and yellow."}]"""), Json(rows[2].Conversation));
        Assert.Equal(Norm("""[{"role":"system","content":"You are a patient math teacher."},{"role":"user","content":"What is 3 + 4?"},{"role":"assistant","content":"3 + 4 = 7."},{"role":"user","content":"And what is that times two?"},{"role":"assistant","content":"It is 14."}]"""), Json(rows[10].Conversation));
        Assert.Equal(Example("alpaca.json") + " item 11", rows[10].Where);
    }

    [Fact]
    public void QueryResponse_WithSystemAndHistory()
    {
        var rows = Rows(Example("query_response.jsonl"));
        Assert.Equal(12, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.QueryResponse, r.Format));
        Assert.Equal(Norm("""[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the boiling point of water at sea level?"},{"role":"assistant","content":"Water boils at 100 degrees Celsius (212 °F) at sea level."}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Hello!"},{"role":"assistant","content":"Hello! Ask me anything about science."},{"role":"user","content":"Name the largest planet in the solar system."},{"role":"assistant","content":"Jupiter is the largest planet in the solar system."}]"""), Json(rows[1].Conversation));
    }

    [Theory]
    [InlineData("pretrain.txt")]
    [InlineData("pretrain.jsonl")]
    public void Text_OneDocumentPerRow(string file)
    {
        var rows = Rows(Example(file));
        Assert.Equal(12, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Text, r.Format));
        Assert.All(rows, r => Assert.Null(r.Conversation));
        Assert.Equal("The heron stood motionless in the shallows, waiting for a fish to pass.", rows[0].Text);
        Assert.Equal("The first snow of the year covered the market square overnight.", rows[11].Text);
    }

    [Fact]
    public void Preference_PromptChosenRejectedStrings()
    {
        var rows = Rows(Example("preference.jsonl"));
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Preference, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"How many legs does a spider have?"},{"role":"assistant","content":"A spider has eight legs."}]"""), Json(rows[2].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"How many legs does a spider have?"},{"role":"assistant","content":"I don't know."}]"""), Json(rows[2].Rejected));
    }

    [Fact]
    public void Preference_MessagesWithRejectedResponse()
    {
        var rows = Rows(Example("preference_messages.jsonl"));
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Preference, r.Format));
        Assert.Equal(Norm("""[{"role":"user","content":"What is the square root of 144?"},{"role":"assistant","content":"Maybe ask someone else."}]"""), Json(rows[9].Rejected));
        Assert.Equal(Norm("""[{"role":"user","content":"What is the square root of 144?"},{"role":"assistant","content":"The square root of 144 is 12."}]"""), Json(rows[9].Conversation));
    }

    [Fact]
    public void Preference_ChosenRejectedMessageListsAndRejectedMessages()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("uf.jsonl"),
            """{"prompt":"Hi?","chosen":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello!"}],"rejected":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Go away."}]}""" + "\n");
        File.WriteAllText(dir.File("rm.jsonl"),
            """{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}],"rejected_messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"5"}]}""" + "\n");
        var uf = Rows(dir.File("uf.jsonl")).Single();
        Assert.Equal(DatasetFormat.Preference, uf.Format);
        Assert.Equal(Norm("""[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello!"}]"""), Json(uf.Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Go away."}]"""), Json(uf.Rejected));
        var rm = Rows(dir.File("rm.jsonl")).Single();
        Assert.Equal(DatasetFormat.Preference, rm.Format);
        Assert.Equal(Norm("""[{"role":"user","content":"2+2?"},{"role":"assistant","content":"5"}]"""), Json(rm.Rejected));
    }

    [Fact]
    public void Kto_Labels()
    {
        var rows = Rows(Example("kto.jsonl"));
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(DatasetFormat.Kto, r.Format));
        Assert.Equal([true, false, true, false, true, false, true, false, true, false], rows.Select(r => r.KtoLabel!.Value));
        Assert.Equal(Norm("""[{"role":"user","content":"Name the largest planet in the solar system."},{"role":"assistant","content":"Nobody knows that."}]"""), Json(rows[1].Conversation));
    }

    [Fact]
    public void Kto_PromptCompletionLabel_AutoMapped()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("kto.jsonl"), """{"prompt":"Hi","completion":"Hello!","label":true}""" + "\n" + """{"prompt":"Hi","completion":"...","label":false}""" + "\n");
        var rows = Rows(dir.File("kto.jsonl"));
        Assert.Equal([true, false], rows.Select(r => r.KtoLabel!.Value));
        Assert.Equal(Norm("""[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]"""), Json(rows[0].Conversation));
    }

    [Fact]
    public void SelfCognition_SubstitutesNameAndAuthorByTag()
    {
        var rows = Rows(new DatasetOptions
        {
            Datasets = [Example("self-cognition.jsonl")],
            Shuffle = false,
            ModelName = ("小鹗", "Osprey"),
            ModelAuthor = ("鱼鹰实验室", "Osprey Lab"),
        });
        Assert.Equal(12, rows.Count);
        Assert.Equal(Norm("""[{"role":"user","content":"你是谁？"},{"role":"assistant","content":"我是小鹗，由鱼鹰实验室开发的人工智能助手。"}]"""), Json(rows[0].Conversation));
        Assert.Equal(Norm("""[{"role":"user","content":"Who are you?"},{"role":"assistant","content":"I am Osprey, an AI assistant developed by Osprey Lab."}]"""), Json(rows[5].Conversation));
    }

    [Fact]
    public void SelfCognition_WithoutModelName_Warns()
    {
        var log = new StringWriter();
        var rows = Rows(new DatasetOptions { Datasets = [Example("self-cognition.jsonl")], Shuffle = false }, log);
        Assert.Contains("{{NAME}}", Json(rows[0].Conversation), StringComparison.Ordinal);
        Assert.Contains("--model_name", log.ToString(), StringComparison.Ordinal);
    }
}
