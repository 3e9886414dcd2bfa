using Osprey.Hub.Download;
using Osprey.Hub.ModelScope;
using Osprey.Hub.Upload;

namespace Osprey.Tests.Hub.Upload;

/// <summary>
/// The uploaders against <see cref="UploadHubServer"/> (real Kestrel on 127.0.0.1): the repository ends up holding exactly
/// the folder's files byte for byte (compared with the files on disk), large and binary files through LFS and small text
/// inline as the hub's rules say, the private flag and the token reach the hub, a second run sends nothing and makes no
/// commit, a 503 on an LFS PUT is retried, and refusals are one sentence that names the fix.
/// </summary>
public sealed class HubUploadTests
{
    private const string Token = "hf_write_token";

    /// <summary>A folder as an export or a checkpoint leaves it: weights, a multipart-sized blob, a large text file, small text, and a dot-folder to skip.</summary>
    private static string MakeFolder(TempDirectory dir)
    {
        var folder = Path.Combine(dir.Path, "out");
        Directory.CreateDirectory(Path.Combine(folder, "sub"));
        Directory.CreateDirectory(Path.Combine(folder, ".cache"));
        var random = new Random(18);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), Bytes(random, 3_000));
        File.WriteAllBytes(Path.Combine(folder, "big.bin"), Bytes(random, 130_000)); // 4 parts of 40 000 bytes
        File.WriteAllText(Path.Combine(folder, "sub", "tokenizer.json"), "{\"vocab\": \"" + new string('a', 20_000) + "\"}");
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"qwen2\"}\n");
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "fine-tuned with osprey\n");
        File.WriteAllText(Path.Combine(folder, ".cache", "lock"), "not uploaded");
        return folder;
    }

    private static byte[] Bytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    /// <summary>The folder's files as the repository should hold them, read from disk (dot-folders left out).</summary>
    private static Dictionary<string, byte[]> OnDisk(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(folder, f).Replace('\\', '/'))
            .Where(p => !p.StartsWith('.'))
            .ToDictionary(p => p, p => File.ReadAllBytes(Path.Combine(folder, p)));

    private static void AssertSameFiles(Dictionary<string, byte[]> expected, StoredRepo repo)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), repo.Files.Keys.Order(StringComparer.Ordinal));
        foreach (var (path, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(repo.Files[path]), $"{path} differs on the hub");
    }

    private static HfHubUploader Hf(UploadHubServer server, string? token = Token) =>
        new(new HubClientOptions { Endpoint = server.Url, Token = token, InitialBackoff = TimeSpan.FromMilliseconds(5), MaxRetries = 3 });

    [Fact]
    public async Task HuggingFace_FolderArrivesExactly_LfsForLargeAndBinary_PrivateAndToken_ThenARerunSendsNothing()
    {
        await using var server = await UploadHubServer.StartAsync();
        server.RequiredToken = Token;
        using var dir = new TempDirectory();
        var folder = MakeFolder(dir);
        var log = new StringWriter();
        using var uploader = Hf(server);

        var result = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/tiny", Folder = folder, Private = true, CommitMessage = "first", Log = log });

        var repo = server.Repos["me/tiny"];
        AssertSameFiles(OnDisk(folder), repo);
        Assert.True(repo.Private);
        Assert.Equal(["big.bin", "model.safetensors", "sub/tokenizer.json"], repo.ViaLfs.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1, repo.Commits);
        Assert.True(result.Created);
        Assert.Equal((3, 0, 2, 0), (result.LargeFilesSent, result.LargeFilesReused, result.InlineFiles, result.Unchanged));
        Assert.Equal(4, server.Count("PUT", "/storage/part/")); // 130 000 bytes in 40 000-byte parts
        Assert.All(server.Requests.Where(r => !r.Path.StartsWith("/storage/", StringComparison.Ordinal)), r => Assert.Equal("Bearer " + Token, r.Authorization));
        Assert.Contains("big.bin: sending", log.ToString());

        var before = server.Requests.Count;
        var again = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/tiny", Folder = folder, CommitMessage = "again" });
        Assert.False(again.Committed);
        Assert.False(again.Created);
        Assert.Equal(5, again.Unchanged);
        Assert.Equal(1, repo.Commits);
        var rerun = server.Requests.Skip(before).Select(r => r.Path).ToList();
        Assert.DoesNotContain(rerun, p => p.Contains("/storage/", StringComparison.Ordinal) || p.Contains("/commit/", StringComparison.Ordinal) || p.Contains("lfs", StringComparison.Ordinal));

        // One file changed: only it goes up, in a second commit.
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "changed\n");
        var third = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/tiny", Folder = folder });
        Assert.Equal((0, 1, 4), (third.LargeFilesSent, third.InlineFiles, third.Unchanged));
        AssertSameFiles(OnDisk(folder), repo);
        Assert.Equal(2, repo.Commits);
    }

    [Fact]
    public async Task HuggingFace_A503OnTheFirstLfsPutIsRetried()
    {
        await using var server = await UploadHubServer.StartAsync();
        server.FailingPuts = 1;
        using var dir = new TempDirectory();
        var folder = Path.Combine(dir.Path, "adapter");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "adapter_model.safetensors"), Bytes(new Random(1), 5_000));
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), "{\"r\": 8}");
        using var uploader = Hf(server);

        var result = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/adapter", Folder = folder });

        Assert.Equal(2, server.Count("PUT", "/storage/put/"));
        Assert.Equal(1, result.LargeFilesSent);
        AssertSameFiles(OnDisk(folder), server.Repos["me/adapter"]);
        Assert.False(server.Repos["me/adapter"].Private);
    }

    [Fact]
    public async Task HuggingFace_RefusedTokenAndForbiddenOrg_SayWhatToDo()
    {
        await using var server = await UploadHubServer.StartAsync();
        server.RequiredToken = Token;
        server.ForbiddenOrgs.Add("big-org");
        using var dir = new TempDirectory();
        var folder = MakeFolder(dir);

        using (var wrong = Hf(server, "hf_wrong"))
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => wrong.UploadFolderAsync(new HubUploadRequest { RepoId = "me/x", Folder = folder }));
            Assert.Contains("401", e.Message);
            Assert.Contains("HF_TOKEN", e.Message);
            Assert.Contains("--hub_token", e.Message);
        }
        using (var missing = Hf(server, null))
        {
            var e = await Assert.ThrowsAsync<OspreyException>(() => missing.UploadFolderAsync(new HubUploadRequest { RepoId = "me/x", Folder = folder }));
            Assert.Contains("HF_TOKEN", e.Message);
        }
        using var right = Hf(server);
        var forbidden = await Assert.ThrowsAsync<OspreyException>(() => right.UploadFolderAsync(new HubUploadRequest { RepoId = "big-org/x", Folder = folder }));
        Assert.Contains("403", forbidden.Message);
        Assert.Contains("big-org", forbidden.Message);
        Assert.Empty(server.Repos);
    }

    [Fact]
    public async Task ModelScope_FolderArrivesExactly_PrivateAndToken_ThenARerunSendsNothing()
    {
        await using var server = await UploadHubServer.StartAsync();
        server.RequiredToken = "ms-token";
        using var dir = new TempDirectory();
        var folder = MakeFolder(dir);
        var options = new ModelScopeClientOptions { Endpoint = server.Url, Token = "ms-token", InitialBackoff = TimeSpan.FromMilliseconds(5), MaxRetries = 3 };
        using var uploader = new ModelScopeUploader(options);

        var result = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/tiny", Folder = folder, Private = true });

        var repo = server.Repos["me/tiny"];
        AssertSameFiles(OnDisk(folder), repo);
        Assert.True(repo.Private);
        // modelscope's rule: weight suffixes and anything over 1 MiB go through LFS; the 20 KB tokenizer.json stays inline.
        Assert.Equal(["big.bin", "model.safetensors"], repo.ViaLfs.Keys.Order(StringComparer.Ordinal));
        Assert.Equal((2, 3), (result.LargeFilesSent, result.InlineFiles));
        Assert.All(server.Requests.Where(r => !r.Path.StartsWith("/storage/", StringComparison.Ordinal)), r => Assert.Contains("m_session_id=ms-token", r.Cookie));

        var before = server.Requests.Count;
        var again = await uploader.UploadFolderAsync(new HubUploadRequest { RepoId = "me/tiny", Folder = folder });
        Assert.False(again.Committed);
        Assert.Equal(1, repo.Commits);
        Assert.DoesNotContain(server.Requests.Skip(before), r => r.Method != "GET");
    }
}
