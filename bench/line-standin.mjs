// A stand-in for LINE's Messaging API for the outbound h2load run: answers
// every request at once with 200 and a push's response body, counts the
// requests and the distinct X-Line-Retry-Key values (GET /_count).
//
//   PORT=... node line-standin.mjs
import http from "node:http";

const port = Number(process.env.PORT ?? 3001);
let requests = 0;
const keys = new Set();
const body = JSON.stringify({ sentMessages: [{ id: "1", quoteToken: "q" }] });

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/_count") {
      const counts = JSON.stringify({ requests, retry_keys: keys.size });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(counts) });
      res.end(counts);
      return;
    }
    requests++;
    const key = req.headers["x-line-retry-key"];
    if (key) keys.add(key);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "x-line-request-id": String(requests),
      });
      res.end(body);
    });
  })
  .listen(port, "127.0.0.1", () => console.log(`LINE stand-in on ${port}`));
process.on("SIGTERM", () => process.exit(0));
