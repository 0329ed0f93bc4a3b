"""The client and the near-free upstream of scripts/perf/callgrind (standard library only).

    callgrind_drive.py stub PORT           the upstream: answers initialize, tools/list, tools/call
    callgrind_drive.py client HOST:PORT N  initialize, 20 warm-up calls, READY, waits for a line on
                                           stdin, N calls of `echo`, prints `ok K of N`, waits again
"""
import http.client, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        m = json.loads(self.rfile.read(n) or b"null")
        if not isinstance(m, dict) or "id" not in m:
            self.send_response(202); self.send_header("content-length", "0"); self.end_headers(); return
        meth = m.get("method")
        if meth == "initialize":
            r = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                 "serverInfo": {"name": "bench-stub", "version": "1.0.0"}}
        elif meth == "tools/list":
            r = {"tools": [{"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}
        elif meth == "tools/call":
            r = {"content": [{"type": "text", "text": "ok"}], "isError": False}
        else:
            r = {}
        body = json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("mcp-session-id", "stub-session")
        self.send_header("content-length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def do_DELETE(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        self.send_response(405); self.send_header("content-length", "0"); self.end_headers()

def serve_stub(port):
    s = ThreadingHTTPServer(("127.0.0.1", port), Stub)
    s.serve_forever()

def client(gw, n):
    host, port = gw.split(":")
    c = http.client.HTTPConnection(host, int(port))
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    def post(msg, sid=None):
        h = dict(base)
        if sid:
            h["mcp-session-id"] = sid; h["mcp-protocol-version"] = "2025-11-25"
        c.request("POST", "/mcp/stub", json.dumps(msg), h)
        r = c.getresponse(); b = r.read()
        return r.status, r.getheader("mcp-session-id"), b
    st, sid, _ = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    assert st == 200, st
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    ok = 0
    for i in range(1, 21):
        post({"jsonrpc": "2.0", "id": 100000 + i, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"text": "hi"}}}, sid)
    print("READY", flush=True)
    sys.stdin.readline()
    for i in range(1, n + 1):
        st, _, b = post({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": "hi"}}}, sid)
        if st == 200 and b'"ok"' in b and json.loads(b)["id"] == i:
            ok += 1
    print("ok", ok, "of", n, flush=True)
    sys.stdin.readline()

if __name__ == "__main__":
    if sys.argv[1] == "stub":
        serve_stub(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]))
