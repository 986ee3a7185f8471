// The usual alternative to line-adapter's webhook listener: an Express app
// with @line/bot-sdk's middleware (x-line-signature check over the raw body,
// then JSON.parse), answering 200 and keeping nothing.
//
//   CHANNEL_SECRET=... PORT=... [WORKERS=2] node server.mjs
//
// WORKERS > 1 forks that many processes sharing the port (node:cluster);
// the default is one process, as the SDK's examples run it.
import cluster from "node:cluster";
import express from "express";
import { middleware } from "@line/bot-sdk";

const port = Number(process.env.PORT ?? 3000);
const workers = Number(process.env.WORKERS ?? 1);
const channelSecret = process.env.CHANNEL_SECRET;
if (!channelSecret) throw new Error("CHANNEL_SECRET is required");

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let listening = 0;
  cluster.on("listening", () => {
    if (++listening === workers) console.log(`listening on ${port} with ${workers} workers`);
  });
  cluster.on("exit", (_worker, code) => process.exit(code ?? 1));
  process.on("SIGTERM", () => {
    for (const w of Object.values(cluster.workers)) w.process.kill("SIGTERM");
    process.exit(0);
  });
} else {
  const app = express();
  app.get("/healthz", (_req, res) => res.send("ok\n"));
  // Same path shape as line-adapter, so both servers get identical requests.
  app.post("/webhook/line/:channel", middleware({ channelSecret }), (req, res) => {
    // A bot would hand each event on here; this one keeps nothing.
    let events = 0;
    for (const event of req.body.events) if (event.webhookEventId) events++;
    res.status(200).json({ events });
  });
  app.use((err, _req, res, _next) => {
    res.status(err.name === "SignatureValidationFailed" ? 401 : 400).json({ error: err.message });
  });
  app.listen(port, "127.0.0.1", () => {
    if (workers <= 1) console.log(`listening on ${port}`);
  });
  process.on("SIGTERM", () => process.exit(0));
}
