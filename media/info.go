package media

import (
	"strings"
	"time"
)

// Protocols a stream is published with.
const (
	ProtocolRTMP = "rtmp"
	ProtocolWHIP = "whip"
)

// Codec names in StreamInfo.
const (
	CodecH264 = "h264"
	CodecOpus = "opus"
	CodecAAC  = "aac"
)

// Reasons a stream ends, passed to RoomNotifier.StreamEnded.
const (
	EndPublisherLeft = "publisher_left" // the publisher closed (RTMP disconnect, WHIP DELETE)
	EndTimeout       = "timeout"        // the publisher went silent (RTMP read timeout, ICE failure)
	EndReplaced      = "replaced"       // the same user started a new stream in the room
	EndStopped       = "stopped"        // Relay.EndStream (an operator)
	EndShutdown      = "shutdown"       // Relay.Close
	EndError         = "error"          // the ingest failed (logged)
)

// StreamInfo describes a live stream: what the room state shows and the
// admin API lists.
type StreamInfo struct {
	Room     string `json:"room"`
	Protocol string `json:"protocol"` // "rtmp" or "whip"
	User     string `json:"user"`     // publisher's user id (token subject)
	Name     string `json:"name"`     // publisher's display name
	// Video is the relayed video codec ("h264"), "" when the stream has none.
	Video string `json:"video,omitempty"`
	// Audio is the relayed audio codec ("opus"), "" when none is relayed.
	Audio string `json:"audio,omitempty"`
	// DroppedAudio names source audio the relay cannot pass to WebRTC
	// without transcoding ("aac" from RTMP): viewers get video only.
	DroppedAudio string    `json:"dropped_audio,omitempty"`
	Started      time.Time `json:"started"`
	// Viewers is the number of connected WHEP viewers when the info was taken.
	Viewers int `json:"viewers"`
}

// Media is the relayed codecs joined by "+", e.g. "h264+opus" or "h264": the
// value of proto.RoomState.Media.
func (i StreamInfo) Media() string {
	switch {
	case i.Video != "" && i.Audio != "":
		return i.Video + "+" + i.Audio
	case i.Video != "":
		return i.Video
	}
	return i.Audio
}

// Notice is a one-line human text for the room's "stream started" notice,
// saying when the audio is not relayed.
func (i StreamInfo) Notice() string {
	var b strings.Builder
	b.WriteString("Stream started (")
	b.WriteString(strings.ToUpper(i.Protocol))
	b.WriteString(", ")
	b.WriteString(i.Media())
	b.WriteString(")")
	if i.DroppedAudio != "" {
		b.WriteString(": video only, ")
		b.WriteString(strings.ToUpper(i.DroppedAudio))
		b.WriteString(" audio is not relayed to WebRTC")
	}
	return b.String()
}

// RoomNotifier turns stream start and end into reliable notices and room
// state (live flag, Media) in the room. The lead's wiring implements it.
//
// Calls come from one relay goroutine, in order (a room's StreamEnded always
// follows its StreamStarted, and a replaced stream's end precedes its
// successor's start). A slow notifier delays later notices, never media
// (a backlog of 256 notices makes publishers wait). It may call
// Relay.Streams and Relay.Stream, but not Relay.EndStream or Relay.Close:
// they wait for notices to be queued or delivered.
type RoomNotifier interface {
	StreamStarted(room string, info StreamInfo)
	StreamEnded(room string, reason string)
}
