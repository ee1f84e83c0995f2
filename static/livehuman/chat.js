/* The chat page: opens a session over the REST API, signals WebRTC over the
 * session WebSocket (DESIGN.md §7), plays the avatar, and sends text, voice
 * and interrupts. `window.liveHuman` exposes the live objects for tests.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const strings = JSON.parse($("page-strings").textContent);
  const root = $("chat");
  const ui = {
    role: $("role"), start: $("start-button"), interrupt: $("interrupt-button"),
    sayForm: $("say-form"), sayText: $("say-text"), sayButton: $("say-button"),
    talk: $("talk-button"), transcript: $("live-transcript"), history: $("history"),
    subtitle: $("subtitle"), badge: $("state-badge"), readout: $("readout"), error: $("error-line"),
    quality: $("quality-note"),
    video: $("avatar-video"), audio: $("avatar-audio"), canvas: $("avatar-canvas"), stageView: $("stage-view"),
  };
  const format = (template, values) => template.replace(/%\((\w+)\)s/g, (_, key) => values[key] ?? "–");

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  function showError(message) {
    ui.error.textContent = message ? format(strings.error, { message }) : "";
  }

  function setState(state) {
    ui.badge.dataset.state = state;
    ui.badge.textContent = strings[state] || state;
    ui.interrupt.disabled = !(state === "speaking" || state === "thinking");
  }

  /* The server steps the video down (fps, half size, a lighter lip-sync engine) to stay real-time under load,
   * and back up when it can: say so while it is degraded. */
  function showDegrade(degrade) {
    const level = degrade ? degrade.level : 0;
    ui.quality.hidden = level === 0;
    ui.quality.dataset.level = String(level);
    if (level === 0) return;
    const what = [format(strings.degraded_fps, { fps: degrade.fps })];
    if (degrade.half_size) what.push(strings.degraded_half_size);
    if (degrade.step === "engine") what.push(strings.degraded_engine);
    ui.quality.textContent = format(strings.degraded, { what: what.join(" · ") });
  }

  /* Sentences of one message: Chinese ones run on, Latin ones keep a space between them. */
  const WIDE = /[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]/;
  function joinSentences(before, next) {
    if (!before) return next;
    return WIDE.test(before.slice(-1)) || WIDE.test(next.charAt(0)) ? before + next : `${before} ${next}`;
  }

  /* Conversation history: one entry per message, filled as subtitles and timings arrive. */
  const entries = new Map();
  function entry(key, speaker) {
    if (!entries.has(key)) {
      const item = document.createElement("li");
      item.className = `message ${speaker}`;
      item.innerHTML = `<span class="who"></span> <span class="text"></span> <small class="timings"></small>`;
      item.querySelector(".who").textContent = speaker === "user" ? strings.you : strings.assistant;
      ui.history.appendChild(item);
      entries.set(key, item);
    }
    return entries.get(key);
  }

  class ChatClient {
    constructor() {
      this.session = null; this.ws = null; this.pc = null; this.mic = null;
      this.pingSentAt = 0; this.rttMs = null; this.statsTimer = null; this.lastFrames = null; this.serverFps = null;
      this.chroma = null; this.sentSize = "";
    }

    get talkMode() {
      return document.querySelector("input[name=talk-mode]:checked").value;
    }

    async start() {
      showError("");
      setState("connecting");
      ui.start.disabled = true;
      try {
        this.session = await api(root.dataset.sessionsUrl, { role: ui.role.value });
        await this.openSocket();
        await this.connectPeer();
        ui.start.textContent = strings.stop;
        ui.start.disabled = false;
        for (const control of [ui.sayText, ui.sayButton, ui.talk]) control.disabled = false;
      } catch (error) {
        showError(error.message);
        await this.stop(false);
      }
    }

    openSocket() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      this.ws = new WebSocket(`${scheme}://${location.host}${this.session.ws_url}`);
      this.ws.onmessage = (event) => this.onEvent(JSON.parse(event.data));
      this.ws.onclose = () => { if (this.session) this.stop(false, strings.disconnected); };
      return new Promise((resolve, reject) => {
        this.ws.onopen = resolve;
        this.ws.onerror = () => reject(new Error(strings.disconnected));
      });
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    async connectPeer() {
      this.pc = new RTCPeerConnection({
        iceServers: this.session.ice_servers || [],
        iceTransportPolicy: this.session.ice_transport_policy || "all",
      });
      this.pc.addTransceiver("video", { direction: "recvonly" });
      try {
        this.mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
        const [track] = this.mic.getAudioTracks();
        track.enabled = this.talkMode === "hands_free";
        this.pc.addTransceiver(track, { direction: "sendrecv" });
      } catch (error) {
        this.pc.addTransceiver("audio", { direction: "recvonly" });
        ui.transcript.textContent = strings.mic_denied;
      }
      this.pc.ontrack = (event) => {
        const target = event.track.kind === "video" ? ui.video : ui.audio;
        target.srcObject = new MediaStream([event.track]);
        target.play().catch(() => {});
      };
      this.pc.onconnectionstatechange = () => {
        if (this.pc && this.pc.connectionState === "failed") this.stop(true, strings.disconnected);
      };
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      await this.iceGatheringDone();
      this.sendVideoSize(); // before the offer: the first frames already come at the size shown
      this.send({ type: "offer", sdp: this.pc.localDescription.sdp });
      this.send({ type: "mode", talk: this.talkMode });
      this.statsTimer = setInterval(() => this.updateReadout(), 1000);
    }

    iceGatheringDone() {
      // Host candidates gather in milliseconds; the page sends one complete offer (no trickle).
      if (this.pc.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => { if (this.pc.iceGatheringState === "complete") resolve(); };
        this.pc.addEventListener("icegatheringstatechange", done);
        setTimeout(resolve, 2000);
      });
    }

    onEvent(event) {
      switch (event.type) {
        case "answer":
          this.pc.setRemoteDescription({ type: "answer", sdp: event.sdp });
          break;
        case "state":
          setState(event.state);
          this.serverFps = event.fps; // lowered by the server under load, raised again when it has headroom
          showDegrade(event.degrade);
          if (event.state === "idle") ui.subtitle.textContent = "";
          break;
        case "role": {
          ui.role.value = String(event.role);
          const note = document.createElement("li");
          note.className = "message system";
          note.textContent = format(strings.role_switched, { name: event.name, ms: event.switch_ms });
          ui.history.appendChild(note);
          break;
        }
        case "role_updated": {
          // An operator saved this role (or its voice or prompt) while we talk: say what changed.
          const note = document.createElement("li");
          note.className = "message system role-updated";
          const parts = event.changed.map((part) => strings[`changed_${part}`] || part).join(", ");
          note.textContent = format(strings.role_updated, { name: event.name, changes: parts });
          ui.history.appendChild(note);
          this.serverFps = event.fps;
          break;
        }
        case "transcript":
          ui.transcript.textContent = event.text;
          if (event.final && event.text) entry(`user-${event.message_id || Date.now()}`, "user").querySelector(".text").textContent = event.text;
          break;
        case "subtitle": {
          ui.subtitle.textContent = event.text;
          const text = entry(`assistant-${event.message_id}`, "assistant").querySelector(".text");
          text.textContent = joinSentences(text.textContent, event.text);
          break;
        }
        case "timings":
          entry(`assistant-${event.message_id}`, "assistant").querySelector(".timings").textContent = [
            ["timing_asr", event.asr_ms], ["timing_llm", event.llm_first_token_ms], ["timing_tts", event.tts_first_audio_ms],
            ["timing_frame", event.first_frame_ms], ["timing_total", event.total_ms],
          ].filter(([, ms]) => ms != null).map(([name, ms]) => format(strings[name], { ms })).join(" · ");
          if (event.interrupted) {
            entry(`assistant-${event.message_id}`, "assistant").querySelector(".timings").prepend(`${strings.interrupted} `);
          }
          break;
        case "error":
          showError(event.message);
          break;
        case "pong":
          this.rttMs = Math.round(performance.now() - this.pingSentAt);
          break;
        case "closed":
          this.stop(false, format(strings.session_ended, { reason: strings[`ended_${event.reason}`] || event.reason }));
          break;
        default:
          break;
      }
    }

    async updateReadout() {
      if (!this.pc) return;
      this.pingSentAt = performance.now();
      this.send({ type: "ping" });
      const stats = await this.pc.getStats();
      let fps = null; let jitterMs = null;
      stats.forEach((report) => {
        if (report.type !== "inbound-rtp") return;
        if (report.kind === "video") fps = report.framesPerSecond ?? fps;
        if (report.kind === "audio" && report.jitterBufferEmittedCount) {
          jitterMs = Math.round((1000 * report.jitterBufferDelay) / report.jitterBufferEmittedCount);
        }
      });
      const sent = format(strings.server_fps, { fps: this.serverFps });
      ui.readout.textContent = `fps ${fps ?? "–"} (${sent}) · RTT ${this.rttMs ?? "–"} ms · ${strings.jitter_buffer} ${jitterMs ?? "–"} ms`;
    }

    /* The server encodes the frames at the size the video is shown (never above the avatar's own): tell it the
     * element's size in device pixels, at the start and whenever the layout or the pixel ratio changes it. */
    sendVideoSize() {
      const box = ui.video.getBoundingClientRect();
      const ratio = window.devicePixelRatio || 1;
      const width = Math.round(box.width * ratio);
      const height = Math.round(box.height * ratio);
      if (width < 1 || height < 1 || `${width}x${height}` === this.sentSize) return;
      this.sentSize = `${width}x${height}`;
      this.send({ type: "video_size", width, height });
    }

    say(text) {
      this.send({ type: "say", text, interrupt: ui.badge.dataset.state === "speaking" });
    }

    interrupt() {
      this.send({ type: "interrupt" });
    }

    setTalking(on) {
      if (this.mic) this.mic.getAudioTracks().forEach((track) => { track.enabled = on; });
      // In push-to-talk the server listens only while the button is held (it also decides barge-in by it).
      if (this.talkMode === "push") this.send({ type: "talk", on });
    }

    setMode(mode) {
      this.send({ type: "mode", talk: mode });
      this.setTalking(mode === "hands_free");
      ui.talk.hidden = mode === "hands_free";
    }

    async stop(notifyServer = true, message = "") {
      const session = this.session;
      this.session = null;
      clearInterval(this.statsTimer);
      if (notifyServer && session) await api(`${root.dataset.sessionsUrl}${session.id}/end/`).catch(() => {});
      if (this.ws) this.ws.close();
      if (this.pc) this.pc.close();
      if (this.mic) this.mic.getTracks().forEach((track) => track.stop());
      this.ws = null; this.pc = null; this.mic = null; this.sentSize = "";
      setState("idle");
      showDegrade(null);
      ui.start.textContent = strings.start;
      ui.start.disabled = false;
      for (const control of [ui.sayText, ui.sayButton, ui.talk, ui.interrupt]) control.disabled = true;
      if (message) showError(message);
    }
  }

  const client = new ChatClient();
  window.liveHuman = client;

  ui.start.addEventListener("click", () => (client.session ? client.stop() : client.start()));
  // A role whose speech recognition cannot run on this server says so beside the voice controls.
  const voiceNote = $("voice-note");
  function showVoiceNote() {
    const note = ui.role.selectedOptions[0]?.dataset.voiceNote || "";
    voiceNote.textContent = note;
    voiceNote.hidden = !note;
  }
  showVoiceNote();
  // While a session runs, picking another role switches it in place (same connection, new face and voice).
  ui.role.addEventListener("change", () => {
    showVoiceNote();
    if (client.session) client.send({ type: "switch_role", role: Number(ui.role.value) });
  });
  ui.interrupt.addEventListener("click", () => client.interrupt());
  ui.sayForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.sayText.value.trim();
    if (!text) return;
    client.say(text);
    ui.sayText.value = "";
  });
  for (const radio of document.querySelectorAll("input[name=talk-mode]")) {
    radio.addEventListener("change", () => client.setMode(client.talkMode));
  }
  // Held by mouse or finger: the pointer is captured so a finger sliding on the button keeps talking, and a
  // gesture the browser takes over (pointercancel) ends it like a release.
  const holdStart = (event) => {
    event.preventDefault();
    ui.talk.setPointerCapture(event.pointerId);
    client.setTalking(true);
  };
  const holdEnd = () => client.setTalking(false);
  ui.talk.addEventListener("pointerdown", holdStart);
  for (const kind of ["pointerup", "pointercancel", "lostpointercapture"]) ui.talk.addEventListener(kind, holdEnd);
  ui.talk.addEventListener("contextmenu", (event) => event.preventDefault()); // a long press is not a menu
  // A resize (rotation, a window dragged, a zoom that changes the pixel ratio) re-sends the shown size once the
  // layout has settled: each new size reopens the server's encoder.
  let resized = null;
  const videoResized = () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (client.session) client.sendVideoSize(); }, 300);
  };
  new ResizeObserver(videoResized).observe(ui.video);
  window.addEventListener("resize", videoResized);
  // Closing the page drops the WebSocket; the server then ends the session and frees its peer connection.
  window.addEventListener("pagehide", () => { if (client.ws) client.ws.close(); });

  /* Green screen: the canvas replaces the video element while keying is on. */
  const chroma = {
    enabled: $("chroma-enabled"), color: $("chroma-color"), similarity: $("chroma-similarity"),
    smoothness: $("chroma-smoothness"), spill: $("chroma-spill"), background: $("page-background"),
  };
  function applyChroma() {
    if (chroma.enabled.checked && !client.chroma) {
      try {
        client.chroma = new window.ChromaKeyRenderer(ui.video, ui.canvas);
      } catch (error) {
        showError(error.message);
        chroma.enabled.checked = false;
        return;
      }
    }
    if (!client.chroma) return;
    client.chroma.set({
      color: window.ChromaKeyRenderer.hexToRgb(chroma.color.value),
      similarity: Number(chroma.similarity.value),
      smoothness: Number(chroma.smoothness.value),
      spill: Number(chroma.spill.value),
    });
    ui.canvas.hidden = !chroma.enabled.checked;
    ui.video.classList.toggle("keyed", chroma.enabled.checked);
    if (chroma.enabled.checked) client.chroma.start(); else client.chroma.stop();
  }
  for (const control of [chroma.enabled, chroma.color, chroma.similarity, chroma.smoothness, chroma.spill]) {
    control.addEventListener("input", applyChroma);
  }
  chroma.background.addEventListener("change", () => { ui.stageView.dataset.background = chroma.background.value; });
  ui.stageView.dataset.background = chroma.background.value;
})();
