package main

// selftest-server: a deliberately small SPDY streaming server used only to test this
// client (pyrun's real server is Python). It negotiates like k8s.io/apimachinery's
// httpstream.Handshake and then:
//
//	/exec/..., /attach/...  query: stdin=1 stdout=1 stderr=1 tty=1 resize=1 fail=1
//	    expects the streams the query announces; with resize=1 first writes
//	    "resize <json line>" to stdout; echoes stdin to stdout until the client's FIN;
//	    writes "err\n" to stderr; closes stdout/stderr; then reports success, or exit
//	    code 3 with fail=1 (a metav1.Status for v4, plain text for v1-v3).
//	/portforward/...
//	    pairs error+data streams by requestID; answers "echo " + everything read
//	    until the client's FIN, then closes both streams; port 1 fails with an
//	    error-stream message instead.
//
// Every request and every stream it sees is logged on stdout, one line each.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

var logMu sync.Mutex

func logf(format string, args ...interface{}) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func runSelftestServer(args []string) int {
	if len(args) != 1 {
		return fail(exitUsage, "selftest-server needs ADDR (e.g. 127.0.0.1:0)")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	logf("listening %s", ln.Addr())
	err = http.Serve(ln, http.HandlerFunc(selftestHandler))
	return fail(exitUsage, "%v", err)
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		if strings.Contains(strings.ToLower(v), token) {
			return true
		}
	}
	return false
}

func selftestHandler(w http.ResponseWriter, r *http.Request) {
	clientProtocols := r.Header[headerProtocolVersion]
	logf("request %s %s protocols=%s", r.Method, r.URL.RequestURI(), strings.Join(clientProtocols, ","))
	serverProtocols := []string{"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"}
	portForward := strings.HasPrefix(r.URL.Path, "/portforward/")
	if portForward {
		serverProtocols = []string{"portforward.k8s.io"}
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "spdy/3.1") {
		http.Error(w, "unable to upgrade: missing upgrade headers in request", http.StatusBadRequest)
		return
	}
	if len(clientProtocols) == 0 {
		http.Error(w, "unable to upgrade: "+headerProtocolVersion+" is required", http.StatusBadRequest)
		return
	}
	protocol := ""
	for _, c := range clientProtocols {
		for _, s := range serverProtocols {
			if c == s && protocol == "" {
				protocol = c
			}
		}
	}
	if protocol == "" {
		for _, s := range serverProtocols {
			w.Header().Add(headerAcceptedProtocols, s)
		}
		http.Error(w, fmt.Sprintf("unable to upgrade: unable to negotiate protocol: client supports %v, server accepts %v",
			clientProtocols, serverProtocols), http.StatusForbidden)
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		logf("hijack: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n%s: %s\r\n\r\n",
		headerProtocolVersion, protocol)
	sc, err := spdystream.NewConnection(conn, true)
	if err != nil {
		logf("spdy: %v", err)
		return
	}
	streams := make(chan *spdystream.Stream, 32)
	go sc.Serve(func(st *spdystream.Stream) {
		h := st.Headers()
		logf("stream id=%d streamType=%s port=%s requestID=%s", st.Identifier(),
			h.Get(streamTypeHeader), h.Get(portHeader), h.Get(requestIDHeader))
		st.SendReply(http.Header{}, false)
		streams <- st
	})
	if portForward {
		selftestPortForward(sc, streams)
	} else {
		version, _ := protocolVersion(protocol)
		selftestExec(sc, streams, r, version)
	}
	// Stay until the client goes away (GOAWAY or TCP close), at most 10 s.
	select {
	case <-sc.CloseChan():
	case <-time.After(10 * time.Second):
		logf("client did not close the connection")
	}
	logf("connection closed")
}

func selftestExec(sc *spdystream.Connection, streams <-chan *spdystream.Stream, r *http.Request, version int) {
	q := r.URL.Query()
	on := func(k string) bool { v := q.Get(k); return v == "1" || v == "true" }
	tty := on("tty")
	want := 1
	for _, k := range []string{"stdin", "stdout"} {
		if on(k) {
			want++
		}
	}
	if on("stderr") && !tty {
		want++
	}
	if tty && version >= 3 {
		want++
	}
	got := map[string]*spdystream.Stream{}
	for len(got) < want {
		select {
		case st := <-streams:
			got[st.Headers().Get(streamTypeHeader)] = st
		case <-time.After(10 * time.Second):
			logf("timed out waiting for streams: have %d of %d", len(got), want)
			return
		}
	}
	logf("exec streams ready")
	out := io.Writer(io.Discard)
	if st := got["stdout"]; st != nil {
		out = st
	}
	if st := got["resize"]; st != nil && on("resize") {
		line, _ := bufio.NewReader(st).ReadString('\n')
		fmt.Fprintf(out, "resize %s", line)
	}
	if st := got["stdin"]; st != nil {
		io.Copy(out, st)
		logf("stdin EOF")
	}
	if st := got["stderr"]; st != nil {
		io.WriteString(st, "err\n")
	}
	for _, k := range []string{"stdout", "stderr"} {
		if st := got[k]; st != nil {
			st.Close()
		}
	}
	errStream := got["error"]
	if on("fail") {
		if version >= 4 {
			io.WriteString(errStream, `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3",`+
				`"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`)
		} else {
			io.WriteString(errStream, "command terminated with non-zero exit code: exit status 3")
		}
	} else if version >= 4 {
		io.WriteString(errStream, `{"metadata":{},"status":"Success"}`)
	}
	errStream.Close()
}

func selftestPortForward(sc *spdystream.Connection, streams <-chan *spdystream.Stream) {
	type pair struct{ errorStream, data *spdystream.Stream }
	pairs := map[string]*pair{}
	for {
		var st *spdystream.Stream
		select {
		case st = <-streams:
		case <-sc.CloseChan():
			return
		}
		h := st.Headers()
		id := h.Get(requestIDHeader)
		p := pairs[id]
		if p == nil {
			p = &pair{}
			pairs[id] = p
		}
		if h.Get(streamTypeHeader) == "error" {
			p.errorStream = st
		} else {
			p.data = st
		}
		if p.errorStream == nil || p.data == nil {
			continue
		}
		delete(pairs, id)
		go func(port string, p *pair) {
			if port == "1" {
				io.WriteString(p.errorStream, "selftest: cannot connect to port 1")
			} else {
				in, _ := io.ReadAll(p.data)
				logf("data requestID=%s port=%s got %q", id, port, in)
				p.data.Write(append([]byte("echo "), in...))
			}
			p.data.Close()
			p.errorStream.Close()
		}(h.Get(portHeader), p)
	}
}
