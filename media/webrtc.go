package media

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

const (
	// nackBufferPackets is how many sent video packets each viewer keeps for
	// retransmission on NACK: 0.9 s of a 1 Mbit/s stream, 0.3 s at 4 Mbit/s.
	// A retransmission later than that reaches a sub-second jitter buffer
	// after it gave up on the frame. Each kept packet costs ~1.9 KB, so this
	// is the largest per-viewer memory item (~240 KB); pion's default (1024)
	// would cost ~2 MB per viewer.
	nackBufferPackets = 128
	// gatherTimeout bounds ICE candidate gathering before an answer is sent
	// (host candidates only: it takes milliseconds unless something is wrong).
	gatherTimeout = 5 * time.Second
	// iceKeepalive is how often a connected session sends a STUN keepalive,
	// well inside ICEDisconnectedTimeout.
	iceKeepalive = 2 * time.Second
)

// The codecs the relay negotiates. H.264 in packetization mode 1 with the
// profiles browsers and OBS offer (the relay never decodes, so the profile
// only has to match the offer); Opus for audio. Nothing else: VP8/VP9/AV1
// would need a transcoder to reach an RTMP-fed viewer, so one codec per kind
// keeps every stream playable by every viewer.
var (
	h264Profiles   = []string{"42e01f", "42001f", "4d001f", "64001f"}
	h264Capability = webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: videoClock,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
	opusCapability = webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: audioClock, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// newMediaEngine registers the relay's codecs with the given video feedback.
func newMediaEngine(feedback []webrtc.RTCPFeedback) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCapability, PayloadType: 111},
		webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for i, p := range h264Profiles {
		c := h264Capability
		c.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + p
		c.RTCPFeedback = feedback
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: webrtc.PayloadType(102 + 2*i)},
			webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// settingEngine applies the network part of cfg.
func settingEngine(cfg Config) (webrtc.SettingEngine, error) {
	var se webrtc.SettingEngine
	se.SetICETimeouts(cfg.ICEDisconnectedTimeout, cfg.ICEFailedTimeout, iceKeepalive)
	// No mDNS: it opens a multicast socket per session, and our candidates
	// are plain addresses (browsers' .local candidates are found as
	// peer-reflexive when they reach us).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if cfg.IPv6 {
		types = append(types, webrtc.NetworkTypeUDP6)
	}
	se.SetNetworkTypes(types)
	if cfg.UDPPortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return se, fmt.Errorf("media: UDP port range: %w", err)
		}
	}
	if cfg.PublicIP != "" {
		se.SetNAT1To1IPs([]string{cfg.PublicIP}, webrtc.ICECandidateTypeHost)
	}
	if len(cfg.Interfaces) > 0 {
		names := slices.Clone(cfg.Interfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(names, name) })
	}
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	return se, nil
}

// newAPIs builds the pion APIs: ingest (WHIP: asks the publisher to resend
// lost packets, reports reception and transport-wide feedback for its
// bandwidth estimate) and egress (WHEP: answers viewers' NACKs, sends
// sender reports for lip sync).
func newAPIs(cfg Config) (ingest, egress *webrtc.API, err error) {
	se, err := settingEngine(cfg)
	if err != nil {
		return nil, nil, err
	}

	inME, err := newMediaEngine([]webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}})
	if err != nil {
		return nil, nil, fmt.Errorf("media: ingest codecs: %w", err)
	}
	inIR := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, nil, err
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, nil, err
	}
	inIR.Add(gen)
	inIR.Add(rr)
	if err := webrtc.ConfigureTWCCSender(inME, inIR); err != nil {
		return nil, nil, fmt.Errorf("media: ingest TWCC: %w", err)
	}

	outME, err := newMediaEngine([]webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}})
	if err != nil {
		return nil, nil, fmt.Errorf("media: egress codecs: %w", err)
	}
	outIR := &interceptor.Registry{}
	resp, err := nack.NewResponderInterceptor(nack.ResponderSize(nackBufferPackets))
	if err != nil {
		return nil, nil, err
	}
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, nil, err
	}
	outIR.Add(resp)
	outIR.Add(sr)

	ingest = webrtc.NewAPI(webrtc.WithMediaEngine(inME), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(inIR))
	egress = webrtc.NewAPI(webrtc.WithMediaEngine(outME), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(outIR))
	return ingest, egress, nil
}

// errBadOffer wraps an offer pion could not use (a client error).
var errBadOffer = errors.New("unusable SDP offer")

// answer applies offer to pc and returns the complete answer (every
// candidate in it: WHIP/WHEP clients need not trickle).
func answer(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", errBadOffer, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: create answer: %v", errBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("%w: set answer: %v", errBadOffer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gather ICE candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

// acceptedMedia reports which media kinds an answer accepted in the given
// direction ("recvonly" for WHIP, "sendonly" for WHEP).
func acceptedMedia(answerSDP, direction string) (video, audio bool) {
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(answerSDP)); err != nil {
		return false, false
	}
	for _, md := range d.MediaDescriptions {
		if md.MediaName.Port.Value == 0 {
			continue
		}
		if _, ok := md.Attribute(direction); !ok {
			if _, ok := md.Attribute("sendrecv"); !ok {
				continue
			}
		}
		switch md.MediaName.Media {
		case "video":
			video = true
		case "audio":
			audio = true
		}
	}
	return video, audio
}
