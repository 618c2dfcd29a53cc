package media

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Why a publisher or viewer was refused (label of danmaku_media_refused_total).
const (
	refuseUnauthorized = "unauthorized"  // token missing, forged, malformed
	refuseExpired      = "token_expired" // token past exp
	refuseForbidden    = "forbidden"     // role may not publish, or token not for this room
	refuseBadRequest   = "bad_request"   // bad room id, content type, SDP, stream key
	refuseTooLarge     = "too_large"     // SDP body above maxSDPBytes
	refuseStreamLive   = "stream_live"   // another user is publishing in the room
	refuseOffline      = "offline"       // WHEP for a room with no live stream
	refuseServerFull   = "server_full"   // MaxStreams, MaxViewersPerStream, MaxSessions, MaxRTMPConns
	refuseCodec        = "codec"         // nothing relayable (no H.264 video, no Opus audio)
	refuseRTMPPlay     = "rtmp_play"     // RTMP playback asked (we only ingest RTMP)
	refuseShutdown     = "shutdown"      // the relay is closing
)

// Why packets were not relayed (label of danmaku_media_dropped_total).
const (
	dropAwaitKeyframe = "await_keyframe" // a viewer still waits for its first picture
	dropWriteError    = "write_error"    // pion refused a viewer's packet (closing session)
	dropAudioCodec    = "audio_codec"    // RTMP audio other than Opus (AAC, MP3…): no transcoding
	dropVideoCodec    = "video_codec"    // RTMP video other than H.264 (H.265, AV1, VP9)
	dropBadPacket     = "bad_packet"     // a WHIP RTP packet that does not parse
	dropPadding       = "padding"        // a WHIP padding-only packet (bandwidth probe)
)

// metrics are the relay's Prometheus collectors (danmaku_media_*).
type metrics struct {
	streams      *prometheus.GaugeVec
	viewers      prometheus.Gauge
	sessions     prometheus.Gauge
	inPackets    prometheus.Counter
	inBytes      prometheus.Counter
	outPackets   prometheus.Counter
	outBytes     prometheus.Counter
	keyframes    prometheus.Counter
	keyframeReqs *prometheus.CounterVec
	refused      *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	closed       *prometheus.CounterVec

	// Pre-resolved children for the hot path.
	dropAwait, dropWrite prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "danmaku_media_streams", Help: "Live streams on this node, by ingest protocol.",
		}, []string{"protocol"}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_media_viewers", Help: "WHEP viewers receiving media on this node.",
		}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "danmaku_media_webrtc_sessions", Help: "WebRTC sessions (WHIP and WHEP, connecting included).",
		}),
		inPackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_media_rtp_in_packets_total", Help: "RTP packets received from publishers (RTMP frames packetized).",
		}),
		inBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_media_rtp_in_bytes_total", Help: "RTP payload bytes received from publishers.",
		}),
		outPackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_media_rtp_out_packets_total", Help: "RTP packets relayed to viewers (one per viewer).",
		}),
		outBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_media_rtp_out_bytes_total", Help: "RTP payload bytes relayed to viewers.",
		}),
		keyframes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "danmaku_media_keyframes_total", Help: "Keyframes received from publishers.",
		}),
		keyframeReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_media_keyframe_requests_total",
			Help: "Viewers' needs for a picture, by result: pli (sent to a WHIP publisher), coalesced (into the PLI sent when the 500 ms interval ends), cached (RTMP keyframe served), throttled (this RTMP viewer was served one < 500 ms ago).",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_media_refused_total", Help: "Publishers and viewers refused, by reason.",
		}, []string{"kind", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_media_dropped_total", Help: "Packets or frames not relayed, by reason.",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "danmaku_media_sessions_closed_total", Help: "Sessions closed, by kind and reason.",
		}, []string{"kind", "reason"}),
	}
	m.dropAwait = m.dropped.WithLabelValues(dropAwaitKeyframe)
	m.dropWrite = m.dropped.WithLabelValues(dropWriteError)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.streams, m.viewers, m.sessions, m.inPackets, m.inBytes,
		m.outPackets, m.outBytes, m.keyframes, m.keyframeReqs, m.refused, m.dropped, m.closed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("media: register metrics: %w", err)
		}
	}
	return m, nil
}

// countIn records one packet from a publisher.
func (m *metrics) countIn(bytes int) {
	m.inPackets.Inc()
	m.inBytes.Add(float64(bytes))
}

// countOut records one fan-out pass (called once per source packet, not per viewer).
func (m *metrics) countOut(sent, bytes, skipped, failed int) {
	if sent > 0 {
		m.outPackets.Add(float64(sent))
		m.outBytes.Add(float64(bytes))
	}
	if skipped > 0 {
		m.dropAwait.Add(float64(skipped))
	}
	if failed > 0 {
		m.dropWrite.Add(float64(failed))
	}
}
