package media

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/pion/rtp"

	"github.com/danmaku/danmaku/room/proto"
)

// rtmpApp is the RTMP application name publishers use: rtmp://host/live/...
const rtmpApp = "live"

// maxAcceptBackoff caps the pause after a failed accept (e.g. EMFILE), so a
// descriptor shortage does not spin the loop.
const maxAcceptBackoff = time.Second

// rtmpPublisher is a stream's RTMP source. It cannot be asked for a
// keyframe: viewers are served the cached one instead.
type rtmpPublisher struct{ conn net.Conn }

func (p *rtmpPublisher) requestKeyframe() {}
func (p *rtmpPublisher) stop(string)      { _ = p.conn.Close() }

// acceptRTMP accepts publishers until the listener closes.
func (r *Relay) acceptRTMP(ln net.Listener) {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("RTMP accept", "err", err)
			t := time.NewTimer(backoff)
			<-t.C
			backoff = min(2*backoff, maxAcceptBackoff)
			continue
		}
		backoff = 5 * time.Millisecond
		r.mu.Lock()
		if r.closed || len(r.rtmpConns) >= r.cfg.MaxRTMPConns {
			r.mu.Unlock()
			_ = c.Close()
			r.m.refused.WithLabelValues(ProtocolRTMP, refuseServerFull).Inc()
			continue
		}
		r.rtmpConns[c] = struct{}{}
		r.wg.Add(1) // under mu with closed false: before Close's Wait
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			r.serveRTMP(c)
		}()
	}
}

// serveRTMP runs one RTMP connection: handshake, publish command, token
// check, track discovery, then relaying until the publisher leaves.
func (r *Relay) serveRTMP(c net.Conn) {
	defer func() {
		r.mu.Lock()
		delete(r.rtmpConns, c)
		r.mu.Unlock()
		_ = c.Close()
	}()
	defer func() {
		// gortmplib parses untrusted bytes; a bug there must cost this
		// connection only, never the process.
		if p := recover(); p != nil {
			r.log.Error("RTMP connection panicked", "remote", c.RemoteAddr().String(), "panic", fmt.Sprint(p))
		}
	}()
	timeout := r.cfg.RTMPTimeout
	_ = c.SetDeadline(time.Now().Add(timeout))
	conn := &gortmplib.ServerConn{RW: c}
	if err := conn.Initialize(); err != nil {
		r.log.Debug("RTMP handshake", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	if err := conn.Accept(); err != nil {
		r.log.Debug("RTMP connect", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	if !conn.Publish {
		r.rtmpRefuse(conn, refuseRTMPPlay, "NetStream.Play.Failed", "RTMP playback is not supported: watch over WHEP")
		return
	}
	room, token, err := parseStreamKey(conn.URL)
	if err != nil {
		r.rtmpRefuse(conn, refuseBadRequest, "NetStream.Publish.BadName", err.Error())
		return
	}
	claims, e := r.checkToken(token, room, true)
	if e != nil {
		r.rtmpRefuse(conn, e.reason, "NetStream.Publish.BadName", string(e.code)+": "+e.msg)
		return
	}
	st := r.newPublishedStream(room, claims, ProtocolRTMP)
	st.pub = &rtmpPublisher{conn: c}
	if e := r.claim(st); e != nil {
		r.rtmpRefuse(conn, e.reason, "NetStream.Publish.BadName", string(e.code)+": "+e.msg)
		return
	}
	reason := EndError
	defer func() { st.end(reason) }()

	// The reader buffers about 2 s of media to find the tracks.
	_ = c.SetDeadline(time.Now().Add(timeout))
	rd := &gortmplib.Reader{Conn: conn}
	if err := rd.Initialize(); err != nil {
		reason = readEndReason(err)
		r.log.Info("RTMP publisher sent no usable tracks", "room", room, "err", err)
		return
	}
	if err := r.setupRTMPTracks(st, rd); err != nil {
		r.m.refused.WithLabelValues(ProtocolRTMP, refuseCodec).Inc()
		r.log.Info("RTMP stream refused", "room", room, "err", err)
		return
	}
	if !st.goLive() {
		return
	}
	for {
		_ = c.SetDeadline(time.Now().Add(timeout))
		if err := rd.Read(); err != nil {
			reason = readEndReason(err)
			if reason == EndError {
				r.log.Warn("RTMP stream failed", "room", room, "err", err)
			}
			return
		}
	}
}

// readEndReason classifies the error that ended an RTMP stream.
func readEndReason(err error) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return EndTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return EndPublisherLeft
	}
	return EndError
}

// rtmpRefuse tells the publisher why it is refused (OBS and ffmpeg show the
// description) and counts it; the caller closes the connection.
func (r *Relay) rtmpRefuse(conn *gortmplib.ServerConn, reason, code, desc string) {
	r.m.refused.WithLabelValues(ProtocolRTMP, reason).Inc()
	_ = conn.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{nil, amf0.Object{
			{Key: "level", Value: "error"},
			{Key: "code", Value: code},
			{Key: "description", Value: desc},
		}},
	})
}

// parseStreamKey reads the room and token from an RTMP publish URL. OBS
// users type server rtmp://host/live/<room> and stream key <token>, which
// arrives as live/<room>/<token>; tools that want the room in the key use
// server rtmp://host/live and key <room>?token=<token>.
func parseStreamKey(u *url.URL) (room, token string, err error) {
	if u == nil {
		return "", "", errors.New("no publish URL")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != rtmpApp {
		return "", "", fmt.Errorf("publish to rtmp://host/%s/<room> with the token as stream key", rtmpApp)
	}
	room = parts[1]
	switch len(parts) {
	case 2:
		token = u.Query().Get("token")
	case 3:
		token = parts[2]
	default:
		return "", "", errors.New("stream key must be the token alone")
	}
	if !proto.ValidRoom(room) {
		return "", "", errors.New("invalid room id")
	}
	if token == "" {
		return "", "", errors.New("missing token (the stream key)")
	}
	return room, token, nil
}

// setupRTMPTracks registers a handler for every track the publisher sent
// (the reader calls a missing one as a nil function): the first H.264 track
// and the first Opus track are relayed, the rest dropped and counted. It
// fills the stream's codecs and fails when nothing is relayable.
func (r *Relay) setupRTMPTracks(st *stream, rd *gortmplib.Reader) error {
	m := r.m
	dropVideo := func(time.Duration, time.Duration, [][]byte) { m.dropped.WithLabelValues(dropVideoCodec).Inc() }
	dropAudio := func(time.Duration, []byte) { m.dropped.WithLabelValues(dropAudioCodec).Inc() }
	var other []string
	for _, t := range rd.Tracks() {
		switch c := t.Codec.(type) {
		case *codecs.H264:
			if st.info.Video != "" {
				rd.OnDataH264(t, dropVideo)
				continue
			}
			st.info.Video = CodecH264
			z := &h264Packetizer{sps: slices.Clone(c.SPS), pps: slices.Clone(c.PPS), seq: uint16(rand.Uint32()), base: rand.Uint32()}
			rd.OnDataH264(t, func(pts, _ time.Duration, au [][]byte) {
				pkts, key := z.packetize(pts, au)
				if pkts == nil {
					return
				}
				for _, p := range pkts {
					m.countIn(len(p.Payload))
				}
				st.writeVideoAU(pkts, key)
			})
		case *codecs.Opus:
			if st.info.Audio != "" {
				rd.OnDataOpus(t, dropAudio)
				continue
			}
			st.info.Audio = CodecOpus
			base := rand.Uint32()
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32())}}
			rd.OnDataOpus(t, func(pts time.Duration, packet []byte) {
				pkt.Timestamp = base + rtpTime(pts, audioClock)
				pkt.Payload = packet
				m.countIn(len(packet))
				st.writeAudio(&pkt)
				pkt.SequenceNumber++
			})
		case *codecs.H265:
			rd.OnDataH265(t, dropVideo)
			other = append(other, "h265")
		case *codecs.AV1:
			rd.OnDataAV1(t, func(time.Duration, [][]byte) { m.dropped.WithLabelValues(dropVideoCodec).Inc() })
			other = append(other, "av1")
		case *codecs.VP9:
			rd.OnDataVP9(t, func(time.Duration, []byte) { m.dropped.WithLabelValues(dropVideoCodec).Inc() })
			other = append(other, "vp9")
		case *codecs.MPEG4Audio:
			rd.OnDataMPEG4Audio(t, dropAudio)
			st.info.DroppedAudio = CodecAAC
		case *codecs.MPEG1Audio:
			rd.OnDataMPEG1Audio(t, dropAudio)
			st.info.DroppedAudio = "mp3"
		case *codecs.AC3:
			rd.OnDataAC3(t, dropAudio)
			st.info.DroppedAudio = "ac3"
		case *codecs.G711:
			rd.OnDataG711(t, dropAudio)
			st.info.DroppedAudio = "g711"
		case *codecs.LPCM:
			rd.OnDataLPCM(t, dropAudio)
			st.info.DroppedAudio = "lpcm"
		case *codecs.FLAC:
			rd.OnDataFLAC(t, dropAudio)
			st.info.DroppedAudio = "flac"
		default:
			return fmt.Errorf("track codec %T has no handler", t.Codec)
		}
	}
	if st.info.Audio != "" {
		st.info.DroppedAudio = ""
	}
	if st.info.Video == "" && st.info.Audio == "" {
		return fmt.Errorf("nothing relayable (need H.264 video or Opus audio; got %v, audio %q)", other, st.info.DroppedAudio)
	}
	return nil
}
