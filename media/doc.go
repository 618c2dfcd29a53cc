// Package media is the media relay: streamers publish video into a room over
// RTMP (OBS, ffmpeg) or WHIP, and viewers watch it over WebRTC (WHEP) with
// sub-second latency, so the danmaku flying over the picture match it.
//
// It owns the RTMP listener (gortmplib), the WHIP/WHEP HTTP endpoints and
// their pion/webrtc (v3) sessions, and the stream registry keyed by room
// (one publisher per room). Media is relayed without re-encoding: H.264
// video and Opus audio pass through; RTMP's AAC audio cannot reach WebRTC
// without transcoding and is dropped (StreamInfo.DroppedAudio says so).
// Stream starts and ends are handed to a RoomNotifier, which the wiring
// turns into reliable room notices and room state.
//
// Follow one RTMP frame: serveRTMP (connection goroutine) → the reader's
// H.264 callback → h264Packetizer.packetize (once per frame, for everyone)
// → stream.writeVideoAU (per viewer: cached keyframe for a late joiner,
// keyframe gate, its own sequence numbers, pion's WriteRTP = SRTP + UDP).
// Follow one WHIP packet: whipPublisher.relay (track goroutine) →
// stream.forwardVideo / writeAudio → the same per-viewer writes. A viewer's
// PLI reaches the WHIP publisher as a PLI (stream.needKeyframe, throttled).
//
// It imports room/auth (token checks) and room/proto (room ids, error
// codes). It must not import edge, fanout, the room manager, NATS or Redis:
// the RoomNotifier interface is the boundary, implemented by cmd/danmaku.
package media
