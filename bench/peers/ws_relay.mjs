// The floor: a bare `ws` forwarder with the relay's topology and nothing else.
// /fwd/a/KEY sends each message back to itself (the sender's copy) and to /fwd/b/KEY.
// Prints {"port": N} once listening; "cpu" on stdin -> {"cpu_s": T}; exits when stdin closes.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { WebSocketServer } from "ws";

const http = createServer();
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 1e6 });
const receivers = new Map();

wss.on("connection", (ws, req) => {
  const [, , side, key] = (req.url ?? "").split("/");
  if (side === "b") {
    receivers.set(key, ws);
    ws.on("close", () => receivers.delete(key));
    return;
  }
  ws.on("message", (data, isBinary) => {
    ws.send(data, { binary: isBinary });
    receivers.get(key)?.send(data, { binary: isBinary });
  });
});

http.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: http.address().port }) + "\n");
});

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() === "cpu") {
    const u = process.cpuUsage();
    process.stdout.write(JSON.stringify({ cpu_s: (u.user + u.system) / 1e6 }) + "\n");
  }
});
rl.on("close", () => process.exit(0));
