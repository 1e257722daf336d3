// The /control WebSocket: the control language (README.md, "Control language") as text
// messages. Commands are answered in order, one `ok …`/`err …` line each; after `watch` the
// daemon also pushes `event …` lines at any time, which never consume a reply slot.
'use strict';

const nowUs = () => performance.now() * 1000;
// Clock samples kept (one a second after the first burst): the offset is the quickest one's.
const CLOCK_SAMPLES = 20;
const wsUrl = (path) => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;

// `eye=0 joined viewers=2` → { eye: '0', joined: true, viewers: '2' }; a value may be quoted
// (`camera="stalled: no frames"`).
// `key=value` fields of a reply or event line (README "Replies and events"): a value is a
// bare word, or a JSON string when it holds spaces or quotes; a word without `=` is a flag.
function parseFields(s) {
  const out = {};
  for (const m of s.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)|(\S+)/g)) {
    if (m[3] !== undefined) out[m[3]] = true;
    else if (!m[2].startsWith('"')) out[m[1]] = m[2];
    else {
      try { out[m[1]] = JSON.parse(m[2]); } catch (e) { out[m[1]] = m[2].slice(1, -1); }
    }
  }
  return out;
}

class Control {
  // hooks: onState(state), onEvent({kind, fields, line}), onStatus(status), onConnection(bool)
  constructor(hooks) {
    this.hooks = hooks;
    this.pending = []; // reply handlers, in command order
    this.offsetUs = 0; // daemon clock − local clock
    this.rttUs = Infinity;
    this.clockSamples = []; // { rtt, offset }, µs, the newest last
    this.connected = false;
    this.tokenRequired = false;
    this.maySteer = true;
    this.onAuthChange = () => {};
    this.connect();
  }

  // The commanded state says whether a token is needed; send a kept one once per connection.
  onState(state) {
    const required = !!state.token_required;
    if (required === this.tokenRequired && (this.authTried || !required)) return;
    this.tokenRequired = required;
    if (!required) this.maySteer = true;
    else if (!this.authTried) {
      this.maySteer = false;
      this.authTried = true;
      const kept = sessionStorage.getItem('pieyes-token');
      if (kept) this.authenticate(kept);
    }
    this.onAuthChange();
  }

  authenticate(token) {
    this.send(`auth ${token}`, (reply) => {
      this.maySteer = reply.startsWith('ok');
      if (this.maySteer) sessionStorage.setItem('pieyes-token', token);
      else sessionStorage.removeItem('pieyes-token');
      this.onAuthChange();
    });
  }

  connect() {
    const ws = new WebSocket(wsUrl('/control'));
    this.ws = ws;
    ws.onopen = () => {
      this.connected = true;
      this.authTried = false; // a new connection starts view-only when a token is required
      this.hooks.onConnection(true);
      this.send('watch', (reply) => {
        const m = /^ok watching (\{.*\})$/.exec(reply);
        if (m) this.state(m[1]);
      });
      this.clockSamples = [];
      this.syncClock(5);
    };
    ws.onmessage = (ev) => {
      const line = String(ev.data);
      if (line.startsWith('event ')) {
        this.event(line);
        return;
      }
      const h = this.pending.shift();
      if (h) h(line);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.connected = false;
      this.hooks.onConnection(false);
      const lost = this.pending;
      this.pending = [];
      for (const h of lost) h('err offline the connection to the daemon was lost');
      setTimeout(() => this.connect(), 1000);
    };
  }

  state(json) {
    try {
      this.hooks.onState(JSON.parse(json));
    } catch (e) {
      console.warn('bad state line', e);
    }
  }

  event(line) {
    const rest = line.slice('event '.length);
    const sp = rest.indexOf(' ');
    const kind = sp < 0 ? rest : rest.slice(0, sp);
    const args = sp < 0 ? '' : rest.slice(sp + 1);
    if (kind === 'state') {
      this.state(args);
      return;
    }
    this.hooks.onEvent({ kind, fields: parseFields(args), line });
  }

  // Sends one command; `handler(reply)` gets its reply line. False when not connected.
  send(cmd, handler) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.pending.push(handler || (() => {}));
    this.ws.send(cmd);
    return true;
  }

  // The same as a promise of the reply line (an `err offline …` line when not connected).
  command(cmd) {
    return new Promise((resolve) => {
      if (!this.send(cmd, resolve)) resolve('err offline not connected to the daemon');
    });
  }

  get inFlight() {
    return this.pending.length;
  }

  // NTP-style: the daemon's clock read halfway through a round trip, and the offset taken from
  // the quickest of the last CLOCK_SAMPLES. A reply that waited behind the page's own work
  // (decoding, drawing) reads the daemon's clock too early for its midpoint: that once put the
  // offset 8 ms off, and every capture→paint figure with it, until the next resync. A quick
  // round trip bounds the error by half of it; sampling once a second finds one soon. `count`
  // samples one after another: sent at once, their replies would wait behind the same work.
  syncClock(count = 1) {
    const t0 = nowUs();
    this.send('clock', (reply) => {
      const t1 = nowUs();
      const m = /clock=(\d+)/.exec(reply);
      if (m) {
        this.clockSamples.push({ rtt: t1 - t0, offset: Number(m[1]) - (t0 + t1) / 2 });
        if (this.clockSamples.length > CLOCK_SAMPLES) this.clockSamples.shift();
        const best = this.clockSamples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
        this.rttUs = best.rtt;
        this.offsetUs = best.offset;
      }
      if (count > 1) this.syncClock(count - 1);
    });
  }

  daemonNowUs() {
    return nowUs() + this.offsetUs;
  }

  pollStatus() {
    this.send('status', (reply) => {
      if (reply.startsWith('ok ')) {
        try { this.hooks.onStatus(JSON.parse(reply.slice(3))); } catch (e) { /* a bad line is skipped */ }
      }
    });
  }
}
