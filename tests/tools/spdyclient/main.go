// spdyclient is a test peer for pyrun's CRI streaming server: it speaks the SPDY/3.1
// flavour of the Kubernetes exec/attach/port-forward protocols exactly the way
// k8s.io/client-go does (tools/remotecommand, tools/portforward on top of
// k8s.io/apimachinery/pkg/util/httpstream/spdy), using the same SPDY library
// (github.com/moby/spdystream). Only the Go standard library and spdystream are used;
// the small Kubernetes layer is re-implemented here.
//
// Usage (flags before positional arguments):
//
//	spdyclient exec|attach [-protocols P1,P2] [-stdin] [-stdout] [-stderr] [-tty]
//	                       [-resize COLSxROWS] [-method POST|GET] [-timeout 60s] [-v] URL
//	spdyclient portforward [-protocol portforward.k8s.io] [-method POST] [-timeout 60s] [-v] URL PORT...
//	spdyclient raw-upgrade [-protocols P1,P2] [-method POST] [-no-upgrade] URL
//	spdyclient selftest-server ADDR        (a tiny server used only to test this client)
//
// Exit codes: 0 success; 1 usage or connection error; 2 the remote side reported an
// error (error stream); 3 the upgrade failed; 4 timeout; 5 a SPDY PING went unanswered;
// for exec/attach with v4, the remote command's non-zero exit code.
//
// Diagnostics ("protocol: ...", "spdyclient: ...") go to stderr, or to the file named by
// the SPDYCLIENT_DIAG environment variable so that stderr carries only remote stderr.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/spdystream"
)

// Header names and values from k8s.io/apimachinery/pkg/util/httpstream and k8s.io/api/core/v1.
const (
	headerProtocolVersion   = "X-Stream-Protocol-Version"
	headerAcceptedProtocols = "X-Accepted-Stream-Protocol-Versions"
	headerSpdy31            = "SPDY/3.1"
	streamTypeHeader        = "streamType"
	portHeader              = "port"
	requestIDHeader         = "requestID"

	// createStreamResponseTimeout in apimachinery's spdy/connection.go.
	createStreamResponseTimeout = 30 * time.Second
	// The client-go default is 5 s; 1 s makes sure short tests see PINGs.
	pingPeriod = 1 * time.Second
	// How long a PING may stay unanswered before we call it lost.
	pingLostAfter = 5 * time.Second
)

const (
	exitOK       = 0
	exitUsage    = 1
	exitRemote   = 2
	exitUpgrade  = 3
	exitTimeout  = 4
	exitPingLost = 5
)

var (
	diag    io.Writer = os.Stderr
	verbose bool
)

func diagf(format string, args ...interface{}) {
	fmt.Fprintf(diag, format+"\n", args...)
}

func tracef(format string, args ...interface{}) {
	if verbose {
		diagf("spdyclient: "+format, args...)
	}
}

func main() {
	if path := os.Getenv("SPDYCLIENT_DIAG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "spdyclient: SPDYCLIENT_DIAG: %v\n", err)
			os.Exit(exitUsage)
		}
		diag = f
	}
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "exec", "attach":
		os.Exit(runRemoteCommand(os.Args[1], args))
	case "portforward":
		os.Exit(runPortForward(args))
	case "raw-upgrade":
		os.Exit(runRawUpgrade(args))
	case "selftest-server":
		os.Exit(runSelftestServer(args))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: spdyclient exec|attach|portforward|raw-upgrade [flags] URL [PORT...]")
	os.Exit(exitUsage)
}

func fail(code int, format string, args ...interface{}) int {
	diagf("spdyclient: "+format, args...)
	return code
}

// exitAfter bounds the whole run like the -timeout flag promises.
func exitAfter(d time.Duration) {
	time.AfterFunc(d, func() {
		diagf("spdyclient: timed out after %s", d)
		os.Exit(exitTimeout)
	})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// HTTP/1.1 upgrade, as SpdyRoundTripper.RoundTrip + NewConnection do it.

type upgradeResult struct {
	conn net.Conn
	resp *http.Response
	body []byte // only for a failed upgrade
	// bytes the server sent after the 101 response before the client said anything;
	// client-go reads the response through a throwaway bufio.Reader and loses them.
	early int
}

func upgrade(rawURL, method string, protocols []string, withUpgradeHeaders bool) (*upgradeResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("only http:// URLs are supported, got %q", rawURL)
	}
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	// remotecommand/portforward add one X-Stream-Protocol-Version per protocol, in order;
	// the round tripper adds Connection/Upgrade. req.Write also sends Host, User-Agent
	// and (for POST) "Content-Length: 0", like client-go does.
	for _, p := range protocols {
		req.Header.Add(headerProtocolVersion, p)
	}
	if withUpgradeHeaders {
		req.Header.Add("Connection", "Upgrade")
		req.Header.Add("Upgrade", headerSpdy31)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("writing upgrade request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading upgrade response: %v", err)
	}
	res := &upgradeResult{conn: conn, resp: resp}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		res.early = br.Buffered()
	} else {
		res.body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	conn.SetDeadline(time.Time{})
	return res, nil
}

// upgraded mirrors SpdyRoundTripper.NewConnection's checks and returns the negotiated protocol.
func upgraded(res *upgradeResult) (string, error) {
	resp := res.resp
	connection := strings.ToLower(resp.Header.Get("Connection"))
	upgradeHdr := strings.ToLower(resp.Header.Get("Upgrade"))
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.Contains(connection, "upgrade") ||
		!strings.Contains(upgradeHdr, strings.ToLower(headerSpdy31)) {
		return "", fmt.Errorf("unable to upgrade connection: %s\n%s", resp.Status, strings.TrimSpace(string(res.body)))
	}
	if res.early > 0 {
		return "", fmt.Errorf("server sent %d bytes right after the 101 response, before the client's first frame; "+
			"client-go reads the response through a bufio.Reader it then drops, so these bytes would be lost", res.early)
	}
	return resp.Header.Get(headerProtocolVersion), nil
}

// dialUpgraded performs the upgrade and checks the answer as client-go does; it returns the
// negotiated protocol, or the exit code to end with (and no open connection) when that failed.
func dialUpgraded(rawURL, method string, protocols []string) (*upgradeResult, string, int) {
	res, err := upgrade(rawURL, method, protocols, true)
	if err != nil {
		return nil, "", fail(exitUsage, "%v", err)
	}
	protocol, err := upgraded(res)
	if err != nil {
		res.conn.Close()
		return nil, "", fail(exitUpgrade, "%v", err)
	}
	diagf("protocol: %s", protocol)
	return res, protocol, exitOK
}

// ---------------------------------------------------------------------------
// A SPDY session like apimachinery's spdy.connection: streams are created one at a
// time and each waits for the server's SYN_REPLY; PINGs go out periodically; Close
// resets every registered stream, then sends GOAWAY and closes the TCP connection.

type session struct {
	conn    net.Conn
	spdy    *spdystream.Connection
	mu      sync.Mutex
	streams []*spdystream.Stream

	pingStop  chan struct{}
	pingDone  chan struct{}
	pingsSent int32
	pingsOK   int32
	pingLost  int32
}

func newSession(conn net.Conn) (*session, error) {
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, spdy: sc, pingStop: make(chan struct{}), pingDone: make(chan struct{})}
	// A client accepts (and ignores) server-initiated streams.
	go sc.Serve(spdystream.NoOpStreamHandler)
	go s.sendPings()
	return s, nil
}

// sendPings is apimachinery's sendPings, except that the first PING goes out at once
// (so even short runs exercise the server's PING handling) and that a PING in flight is
// always waited for, also when the session is closing.
func (s *session) sendPings() {
	defer close(s.pingDone)
	t := time.NewTicker(pingPeriod)
	defer t.Stop()
	for {
		atomic.AddInt32(&s.pingsSent, 1)
		res := make(chan error, 1)
		go func() { _, err := s.spdy.Ping(); res <- err }()
		select {
		case err := <-res:
			if err == nil {
				atomic.AddInt32(&s.pingsOK, 1)
			} else {
				tracef("PING: %v", err)
			}
		case <-time.After(pingLostAfter):
			// Stop pinging: spdystream keeps unanswered pings in an unlocked map.
			atomic.StoreInt32(&s.pingLost, 1)
			diagf("spdyclient: SPDY PING not answered within %s", pingLostAfter)
			return
		}
		select {
		case <-s.pingStop:
			return
		case <-s.spdy.CloseChan():
			return
		case <-t.C:
		}
	}
}

// createStream is apimachinery's connection.CreateStream: SYN_STREAM, wait for SYN_REPLY.
func (s *session) createStream(headers http.Header) (*spdystream.Stream, error) {
	st, err := s.spdy.CreateStream(headers, nil, false)
	if err != nil {
		return nil, err
	}
	if err := st.WaitTimeout(createStreamResponseTimeout); err != nil {
		return nil, fmt.Errorf("stream %v (id %d): waiting for SYN_REPLY: %v", headers, st.Identifier(), err)
	}
	tracef("stream %d %v replied", st.Identifier(), headers)
	s.register(st)
	return st, nil
}

func (s *session) register(st *spdystream.Stream) {
	s.mu.Lock()
	s.streams = append(s.streams, st)
	s.mu.Unlock()
}

// forget is apimachinery's RemoveStreams: the stream is no longer reset on Close.
func (s *session) forget(st *spdystream.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.streams {
		if x == st {
			s.streams = append(s.streams[:i], s.streams[i+1:]...)
			return
		}
	}
}

// close is apimachinery's connection.Close (Reset = RST_STREAM CANCEL for any stream we
// have not half-closed ourselves) followed by spdystream's GOAWAY; then the socket closes.
func (s *session) close() {
	close(s.pingStop)
	<-s.pingDone
	s.mu.Lock()
	for _, st := range s.streams {
		st.Reset()
	}
	s.streams = nil
	s.mu.Unlock()
	s.spdy.Close()
	if err := s.spdy.Wait(2 * time.Second); err != nil {
		tracef("waiting for SPDY shutdown: %v", err)
	}
	s.conn.Close()
	tracef("pings sent=%d answered=%d", atomic.LoadInt32(&s.pingsSent), atomic.LoadInt32(&s.pingsOK))
}

func (s *session) pingFailed() bool { return atomic.LoadInt32(&s.pingLost) != 0 }

func streamHeaders(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1]) // spdystream lowercases the names on the wire
	}
	return h
}

// ---------------------------------------------------------------------------
// exec / attach: client-go tools/remotecommand (v1.go, v2.go, v3.go, v4.go).

func protocolVersion(p string) (int, bool) {
	switch p {
	case "v4.channel.k8s.io":
		return 4, true
	case "v3.channel.k8s.io":
		return 3, true
	case "v2.channel.k8s.io":
		return 2, true
	case "channel.k8s.io", "":
		// "" means the server did not negotiate; client-go falls back to v1.
		return 1, true
	}
	return 0, false
}

func runRemoteCommand(kind string, args []string) int {
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	protocols := fs.String("protocols", "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io", "protocols to offer, in order")
	useStdin := fs.Bool("stdin", false, "create a stdin stream fed from our stdin")
	useStdout := fs.Bool("stdout", false, "create a stdout stream")
	useStderr := fs.Bool("stderr", false, "create a stderr stream (not with -tty)")
	tty := fs.Bool("tty", false, "tty mode: no stderr stream, a resize stream for v3/v4")
	resize := fs.String("resize", "", "COLSxROWS: send one terminal size on the resize stream")
	method := fs.String("method", "POST", "HTTP method of the upgrade request")
	timeout := fs.Duration("timeout", 60*time.Second, "bound for the whole run")
	fs.BoolVar(&verbose, "v", false, "trace streams on stderr")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return fail(exitUsage, "%s needs exactly one URL", kind)
	}
	var width, height uint64
	if *resize != "" {
		parts := strings.SplitN(*resize, "x", 2)
		var e1, e2 error
		if len(parts) == 2 {
			width, e1 = strconv.ParseUint(parts[0], 10, 16)
			height, e2 = strconv.ParseUint(parts[1], 10, 16)
		}
		if len(parts) != 2 || e1 != nil || e2 != nil {
			return fail(exitUsage, "-resize wants COLSxROWS, got %q", *resize)
		}
	}
	exitAfter(*timeout)

	res, protocol, code := dialUpgraded(fs.Arg(0), *method, splitList(*protocols))
	if code != exitOK {
		return code
	}
	version, ok := protocolVersion(protocol)
	if !ok {
		res.conn.Close()
		return fail(exitUpgrade, "server chose protocol %q, which we did not offer (%s)", protocol, *protocols)
	}
	s, err := newSession(res.conn)
	if err != nil {
		res.conn.Close()
		return fail(exitUsage, "%v", err)
	}
	code = remoteCommand(s, version, *useStdin, *useStdout, *useStderr, *tty, *resize != "", uint16(width), uint16(height))
	s.close()
	if code == exitOK && s.pingFailed() {
		return exitPingLost
	}
	return code
}

func remoteCommand(s *session, version int, useStdin, useStdout, useStderr, tty, sendResize bool, width, height uint16) int {
	// createStreams: error first, then stdin, stdout, stderr (not with a tty), resize
	// (tty, v3+). Every stream is created only after the previous one was replied to.
	errorStream, err := s.createStream(streamHeaders(streamTypeHeader, "error"))
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	var stdin, stdout, stderr, resize *spdystream.Stream
	if useStdin {
		if stdin, err = s.createStream(streamHeaders(streamTypeHeader, "stdin")); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	if useStdout {
		if stdout, err = s.createStream(streamHeaders(streamTypeHeader, "stdout")); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	if useStderr && !tty {
		if stderr, err = s.createStream(streamHeaders(streamTypeHeader, "stderr")); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	if tty && version >= 3 {
		if resize, err = s.createStream(streamHeaders(streamTypeHeader, "resize")); err != nil {
			return fail(exitUsage, "%v", err)
		}
		if sendResize {
			// v3 handleResizes: json.NewEncoder(resizeStream).Encode(TerminalSize{Width, Height});
			// the stream is never closed by the client.
			size := struct{ Width, Height uint16 }{width, height}
			if err := json.NewEncoder(resize).Encode(size); err != nil {
				return fail(exitUsage, "writing resize: %v", err)
			}
		}
	}
	if version == 1 {
		return streamV1(errorStream, stdin, stdout, stderr)
	}

	// v2+: watchErrorStream reads the error stream to EOF in the background.
	errCh := make(chan []byte, 1)
	go func() {
		msg, _ := io.ReadAll(errorStream)
		errCh <- msg
	}()
	if stdin != nil {
		// Copy our stdin, then half-close (FIN). Also close if the server half-closes
		// stdin first (v2.go copyStdin's second goroutine).
		var once sync.Once
		closeStdin := func() { once.Do(func() { stdin.Close(); tracef("stdin closed (FIN)") }) }
		go func() { io.Copy(stdin, os.Stdin); closeStdin() }()
		go func() { io.Copy(io.Discard, stdin); closeStdin() }()
	}
	var wg sync.WaitGroup
	for _, c := range []struct {
		st  *spdystream.Stream
		dst io.Writer
	}{{stdout, os.Stdout}, {stderr, os.Stderr}} {
		if c.st == nil {
			continue
		}
		wg.Add(1)
		go func(st *spdystream.Stream, dst io.Writer) {
			defer wg.Done()
			io.Copy(dst, st)
			io.Copy(io.Discard, st)
		}(c.st, c.dst)
	}
	// Wait for stdout/stderr to reach EOF, then for the error stream.
	wg.Wait()
	msg := <-errCh
	if len(msg) == 0 {
		if version >= 4 {
			// client-go calls this success too, but a Kubernetes server always writes a
			// Success status on v4: an empty error stream usually means a dropped connection.
			diagf("spdyclient: warning: v4 error stream ended without a status")
		}
		return exitOK
	}
	if version < 4 {
		return fail(exitRemote, "error executing remote command: %s", msg)
	}
	return decodeStatusV4(msg)
}

// streamV1 mirrors v1.go: no stdin half-close, and it returns as soon as stdout/stderr
// are done or the error stream produced text, whichever comes first.
func streamV1(errorStream, stdin, stdout, stderr *spdystream.Stream) int {
	errCh := make(chan []byte, 1)
	go func() {
		msg, _ := io.ReadAll(errorStream)
		if len(msg) > 0 {
			errCh <- msg
		}
	}()
	if stdin != nil {
		go io.Copy(stdin, os.Stdin)
	}
	done := make(chan struct{}, 2)
	waitCount := 0
	if stdout != nil {
		waitCount++
		go func() { io.Copy(os.Stdout, stdout); done <- struct{}{} }()
	}
	if stderr != nil {
		waitCount++
		go func() { io.Copy(os.Stderr, stderr); done <- struct{}{} }()
	}
	for completed := 0; completed < waitCount || waitCount == 0; {
		select {
		case <-done:
			completed++
		case msg := <-errCh:
			return fail(exitRemote, "error executing remote command: %s", msg)
		}
	}
	return exitOK
}

// metav1.Status, as much of it as v4's errorDecoderV4 looks at.
type status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Details *struct {
		Causes []struct {
			Type    string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

func decodeStatusV4(msg []byte) int {
	var st status
	if err := json.Unmarshal(msg, &st); err != nil {
		return fail(exitRemote, "error stream protocol error: %v in %q", err, msg)
	}
	switch st.Status {
	case "Success":
		return exitOK
	case "Failure":
		if st.Reason == "NonZeroExitCode" {
			if st.Details == nil {
				return fail(exitRemote, "error stream protocol error: details must be set")
			}
			for _, c := range st.Details.Causes {
				if c.Type != "ExitCode" {
					continue
				}
				rc, err := strconv.ParseUint(c.Message, 10, 8)
				if err != nil {
					return fail(exitRemote, "error stream protocol error: invalid exit code value %q", c.Message)
				}
				tracef("command terminated with exit code %d", rc)
				return int(rc)
			}
			return fail(exitRemote, "error stream protocol error: no ExitCode cause given")
		}
		return fail(exitRemote, "%s", st.Message)
	default:
		return fail(exitRemote, "error stream protocol error: unknown error (status %q)", st.Status)
	}
}

// ---------------------------------------------------------------------------
// portforward: client-go tools/portforward (PortForwarder.handleConnection).

func runPortForward(args []string) int {
	fs := flag.NewFlagSet("portforward", flag.ExitOnError)
	protocol := fs.String("protocol", "portforward.k8s.io", "protocol to offer")
	method := fs.String("method", "POST", "HTTP method of the upgrade request")
	timeout := fs.Duration("timeout", 60*time.Second, "bound for the whole run")
	fs.BoolVar(&verbose, "v", false, "trace streams on stderr")
	fs.Parse(args)
	if fs.NArg() < 2 {
		return fail(exitUsage, "portforward needs a URL and at least one PORT")
	}
	ports := fs.Args()[1:]
	for _, p := range ports {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fail(exitUsage, "invalid port %q", p)
		}
	}
	exitAfter(*timeout)

	res, negotiated, code := dialUpgraded(fs.Arg(0), *method, []string{*protocol})
	if code != exitOK {
		return code
	}
	if negotiated != *protocol {
		res.conn.Close()
		return fail(exitUpgrade, "unable to negotiate protocol: client supports %q, server returned %q", *protocol, negotiated)
	}
	s, err := newSession(res.conn)
	if err != nil {
		res.conn.Close()
		return fail(exitUsage, "%v", err)
	}
	// Each port in turn, then the first port once more: several connections (request
	// IDs 0, 1, 2, ...) share one SPDY session.
	code = exitOK
	for requestID, port := range append(ports, ports[0]) {
		if !forwardOne(s, port, requestID) {
			code = exitRemote
		}
	}
	s.close()
	if code == exitOK && s.pingFailed() {
		return exitPingLost
	}
	return code
}

// forwardOne is one local connection's worth of handleConnection: it sends
// "ping PORT\n", half-closes, and prints what comes back.
func forwardOne(s *session, port string, requestID int) bool {
	headers := streamHeaders(streamTypeHeader, "error", portHeader, port, requestIDHeader, strconv.Itoa(requestID))
	errorStream, err := s.createStream(headers)
	if err != nil {
		diagf("%s error: creating error stream: %v", port, err)
		return false
	}
	// The client never writes on the error stream: half-close it at once.
	errorStream.Close()
	defer s.forget(errorStream)
	errCh := make(chan []byte, 1)
	go func() {
		msg, _ := io.ReadAll(errorStream)
		errCh <- msg
	}()

	headers.Set(streamTypeHeader, "data")
	dataStream, err := s.createStream(headers)
	if err != nil {
		diagf("%s error: creating data stream: %v", port, err)
		return false
	}
	defer s.forget(dataStream)

	// Our "local connection" sends one line and reaches EOF: the data stream gets a
	// FIN (client-go's `defer dataStream.Close()` after copying local->remote).
	go func() {
		fmt.Fprintf(dataStream, "ping %s\n", port)
		dataStream.Close()
	}()
	// Remote->local until the server's FIN on the data stream, then the error stream.
	got, _ := io.ReadAll(dataStream)
	msg := <-errCh
	out := string(got)
	if len(out) > 0 && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	fmt.Printf("%s: %s", port, out)
	if len(out) == 0 {
		fmt.Println()
	}
	if len(msg) > 0 {
		diagf("%s error: %s", port, msg)
		return false
	}
	return true
}

// ---------------------------------------------------------------------------
// raw-upgrade: show what the server answers to an upgrade request.

func runRawUpgrade(args []string) int {
	fs := flag.NewFlagSet("raw-upgrade", flag.ExitOnError)
	protocols := fs.String("protocols", "v4.channel.k8s.io", "protocols to offer, in order (empty: no header)")
	method := fs.String("method", "POST", "HTTP method of the upgrade request")
	noUpgrade := fs.Bool("no-upgrade", false, "leave out the Connection/Upgrade headers")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return fail(exitUsage, "raw-upgrade needs exactly one URL")
	}
	res, err := upgrade(fs.Arg(0), *method, splitList(*protocols), !*noUpgrade)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	defer res.conn.Close()
	// Output: "status: N", then one "Name: value" line per header value (sorted by
	// name), an empty line, and the body as received.
	fmt.Printf("status: %d\n", res.resp.StatusCode)
	names := make([]string, 0, len(res.resp.Header))
	for name := range res.resp.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range res.resp.Header[name] {
			fmt.Printf("%s: %s\n", name, v)
		}
	}
	fmt.Println()
	os.Stdout.Write(res.body)
	return exitOK
}
