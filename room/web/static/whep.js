// WHEP player: plays a room's live stream into a <video> over WebRTC
// (media/README.md, "Watch (WHEP)"): POST an SDP offer to
// /api/v1/rooms/{room}/whep with the viewer's token, set the answer, DELETE
// the session's Location to stop.

// How long ICE gathering may take before the offer is sent with what was
// gathered (on loopback and LANs it completes in milliseconds).
const GATHER_MS = 2000;

/**
 * play starts a WHEP session and resolves with a handle { stop(ended) }. It
 * rejects with an Error whose .code is the server's (unavailable when the
 * room is not live) or "unsupported" without WebRTC.
 */
export async function play(video, room, token) {
  if (typeof RTCPeerConnection !== "function") {
    throw Object.assign(new Error("this browser has no WebRTC"), { code: "unsupported" });
  }
  const pc = new RTCPeerConnection();
  let location = "";
  // stop ends playback; ended says the server already ended the stream (and
  // with it the session), so there is nothing to DELETE.
  const stop = (ended = false) => {
    pc.close();
    if (video.srcObject) video.srcObject = null;
    if (location && !ended) fetch(location, { method: "DELETE", headers: auth(token) }).catch(() => {});
  };
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (e) => {
      if (e.streams[0] && video.srcObject !== e.streams[0]) video.srcObject = e.streams[0];
      video.play().catch(() => {}); // autoplay policies: muted video plays
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/whep`, {
      method: "POST",
      body: pc.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", ...auth(token) },
    });
    if (res.status !== 201 && res.status !== 200) {
      let code = `http_${res.status}`;
      let message = res.statusText;
      try {
        const j = await res.json();
        code = j.code || code;
        message = j.message || message;
      } catch { /* not JSON */ }
      throw Object.assign(new Error(`WHEP ${res.status}: ${message}`), { code });
    }
    const loc = res.headers.get("Location");
    if (loc) location = new URL(loc, res.url).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  } catch (e) {
    stop();
    throw e;
  }
  return { pc, stop };
}

function auth(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(t);
        resolve();
      }
    });
  });
}
