// A socket.io 4 chat relay: what a web team would pick (rooms, acks-free emits, nothing
// kept on disk). bench/load.py starts it and speaks Engine.IO 4 framing to it with the
// same Python client it uses for every system.
//
// A socket joins the room named in its CONNECT auth ({room, role}); a "chat" event is
// sent back to the sender (its copy, like the host's echo) and to the rest of the room.
// Prints {"port": N} once listening; on a "cpu" line on stdin prints {"cpu_s": T};
// exits when stdin closes.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
  serveClient: false,
});

io.on("connection", (socket) => {
  const room = String(socket.handshake.auth?.room ?? "");
  if (room) socket.join(room);
  socket.on("chat", (data) => {
    socket.emit("chat", data);
    socket.to(room).emit("chat", data);
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
