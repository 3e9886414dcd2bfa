using System.Net;
using System.Net.Http.Headers;

namespace Osprey.Hub.Upload;

/// <summary>
/// A request body read from disk in 1 MiB blocks: the whole file or one part of it (a multipart LFS chunk), so a
/// many-gigabyte shard is never held in memory. Each send reopens the file, so a retried request sends it again.
/// </summary>
internal sealed class FileSliceContent : HttpContent
{
    private readonly string _path;
    private readonly long _offset;
    private readonly long _length;
    private readonly Action<long>? _sent;

    public FileSliceContent(string path, long offset, long length, Action<long>? sent)
    {
        _path = path;
        _offset = offset;
        _length = length;
        _sent = sent;
        Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
        file.Seek(_offset, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        var left = _length;
        while (left > 0)
        {
            var n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new IOException($"{_path} became shorter while it was being uploaded; run the upload again once nothing writes to it.");
            await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
            left -= n;
            _sent?.Invoke(n);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length;
        return true;
    }
}
