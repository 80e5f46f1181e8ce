// Push-to-talk in the page. Capture: getUserMedia → an AudioWorklet → 20 ms frames → the
// WebCodecs AudioEncoder (Opus, the node's settings) → the node over a WebSocket; where the
// browser has no Opus encoder, 16-bit PCM frames go instead and the node encodes them.
// Playback: the node sends what it plays out (10 ms of 16-bit PCM per message); each piece
// is scheduled a little ahead (a small jitter buffer against the network's unevenness)
// through an AnalyserNode that drives the level meter.

const RATE = 48000;
const FRAME = 960; // 20 ms
const AHEAD = 0.08; // seconds of buffer before playing
const MAX_AHEAD = 0.4; // more than this behind: skip ahead

export class Voice {
  constructor(status) {
    this.status = status; // (text, kind) => void
    this.ctx = null;
    this.ws = null;
    this.mic = null;
    this.encoder = null;
    this.codec = null;
    this.talking = false;
    this.frame = new Float32Array(FRAME);
    this.filled = 0;
    this.timestamp = 0;
    this.playhead = 0;
    this.stats = { framesSent: 0, pressedAt: 0, releasedAt: 0, rxChunks: 0, rxPeak: 0, codec: null };
    this.queue = [];
  }

  context() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.analyser.connect(this.ctx.destination);
      this.samples = new Float32Array(this.analyser.fftSize);
    }
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  // The level (0..1) of what is playing now.
  level() {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    if (rms > this.stats.rxPeak) this.stats.rxPeak = rms;
    return rms;
  }

  connect() {
    if (this.ws && this.ws.readyState <= 1) return this.ws;
    const ws = new WebSocket(`wss://${location.host}/web/voice`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        const m = JSON.parse(e.data);
        if (m.type === "error") this.status(m.detail, "error");
      } else {
        this.play(new Int16Array(e.data));
      }
    };
    ws.onclose = () => { this.ws = null; setTimeout(() => this.connect(), 2000); };
    this.ws = ws;
    return ws;
  }

  send(data) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(data);
    else this.queue.push(data);
  }

  flushQueue() {
    while (this.ws && this.ws.readyState === 1 && this.queue.length) this.ws.send(this.queue.shift());
  }

  play(pcm) {
    const ctx = this.context();
    this.stats.rxChunks++;
    const buffer = ctx.createBuffer(1, pcm.length, RATE);
    const out = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.analyser);
    const now = ctx.currentTime;
    if (this.playhead < now || this.playhead > now + MAX_AHEAD) this.playhead = now + AHEAD;
    source.start(this.playhead);
    this.playhead += buffer.duration;
  }

  async openMic() {
    if (this.mic) return true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.status("No microphone here: this page needs HTTPS and a browser with microphone access.", "error");
      return false;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      const refused = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
      this.status(refused
        ? "The microphone was refused: allow it for this page in the browser's settings to talk."
        : "No microphone found: you can listen and chat, but not talk.", "error");
      return false;
    }
    const ctx = this.context();
    await ctx.audioWorklet.addModule("/capture-worklet.js");
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "hark-capture");
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(ctx.destination);
    node.port.onmessage = (e) => this.capture(e.data);
    this.mic = { stream, node };
    await this.openEncoder();
    return true;
  }

  async openEncoder() {
    if (typeof AudioEncoder === "undefined") { this.codec = "pcm"; this.stats.codec = "pcm"; return; }
    const configs = [
      { codec: "opus", sampleRate: RATE, numberOfChannels: 1, bitrate: this.bitrate || 32000,
        opus: { frameDuration: 20000, useinbandfec: true, packetlossperc: 10, signal: "voice", application: "voip" } },
      { codec: "opus", sampleRate: RATE, numberOfChannels: 1, bitrate: this.bitrate || 32000,
        opus: { frameDuration: 20000 } },
    ];
    for (const config of configs) {
      try {
        const { supported } = await AudioEncoder.isConfigSupported(config);
        if (!supported) continue;
        this.encoder = new AudioEncoder({
          output: (chunk) => {
            const bytes = new Uint8Array(chunk.byteLength);
            chunk.copyTo(bytes);
            this.send(bytes);
            this.stats.framesSent++;
          },
          error: (e) => this.status(`Voice encoder: ${e.message}`, "error"),
        });
        this.encoder.configure(config);
        this.codec = "opus";
        this.stats.codec = "opus";
        return;
      } catch (e) { /* try the next */ }
    }
    this.codec = "pcm";
    this.stats.codec = "pcm";
  }

  capture(block) {
    if (!this.talking) return;
    let offset = 0;
    while (offset < block.length) {
      const n = Math.min(FRAME - this.filled, block.length - offset);
      this.frame.set(block.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === FRAME) {
        this.encode(this.frame);
        this.filled = 0;
      }
    }
  }

  encode(frame) {
    if (this.codec === "opus") {
      const data = new AudioData({ format: "f32-planar", sampleRate: RATE, numberOfFrames: FRAME,
        numberOfChannels: 1, timestamp: this.timestamp, data: frame });
      this.timestamp += 20000;
      this.encoder.encode(data);
      data.close();
    } else {
      const pcm = new Int16Array(FRAME);
      for (let i = 0; i < FRAME; i++) pcm[i] = Math.max(-1, Math.min(1, frame[i])) * 32767;
      this.send(pcm.buffer);
      this.stats.framesSent++;
    }
  }

  // Begin a talk-spurt in `room`; false when there is no microphone.
  async start(room) {
    this.stats.pressedAt = performance.now();
    this.wanted = true;
    this.context();
    const ws = this.connect();
    if (!(await this.openMic())) return false;
    // Released while the microphone was opening: no spurt.
    if (!this.wanted) return false;
    this.send(JSON.stringify({ type: "start", room, codec: this.codec }));
    if (ws.readyState === 0) ws.addEventListener("open", () => this.flushQueue(), { once: true });
    else this.flushQueue();
    this.filled = 0;
    this.talking = true;
    return true;
  }

  async stop() {
    this.wanted = false;
    if (!this.talking) return;
    this.talking = false;
    this.stats.releasedAt = performance.now();
    if (this.codec === "opus" && this.encoder) {
      try { await this.encoder.flush(); } catch (e) { /* closed */ }
    }
    this.send(JSON.stringify({ type: "stop" }));
  }
}
