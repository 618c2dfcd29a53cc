// Tracker makes one room's reliable lane exactly-once and in seq order. It is
// pure state: no I/O, no timers, no clock. The client feeds it what the server
// sends (joined, batch, resumed) and sends a resume whenever gap() is true.
// It is a port of room/client/tracker.go; keep the two in step.
//
// Rules (docs/PROTOCOL.md §2.3–2.4): before the join baseline, batches are
// held; after it, a reliable entry with seq ≤ last is a duplicate, seq =
// last+1 is delivered, and seq > last+1 is held until a resume fills the gap.
// An unknown epoch is a gap too; a resume that cannot recover rebases the
// room to the server's fresh (epoch, seq).

// How many epochs a room remembers having left, so that batches of an old
// epoch still in flight are dropped instead of being taken for a new one.
const MAX_RETIRED = 4;

const bySeq = (a, b) => a.seq - b.seq;

export class Tracker {
  /**
   * @param {number} maxHeld entries held past a gap before they are dropped
   *   (the resume brings them back)
   * @param {number} maxPre batches held before the join baseline
   * @param {(counter: string, n: number) => void} [note] counts drops and gaps
   */
  constructor(maxHeld, maxPre, note) {
    this.maxHeld = maxHeld;
    this.maxPre = maxPre;
    this.note = note || (() => {});
    this.based = false;
    this.epoch = "";
    this.last = 0; // last seq delivered in epoch
    this.base = 0; // seq of the last baseline (join or rebase) in epoch
    this.pre = []; // batches before the baseline
    this.held = new Map(); // seq → entry past a gap, all of heldEpoch
    this.heldEpoch = "";
    this.retired = [];
  }

  count(counter, n = 1) {
    if (n > 0) this.note(counter, n);
  }

  /** gap: entries are held behind a gap, a resume is needed. */
  gap() {
    return this.held.size > 0;
  }

  /** position is what a resume asks from. */
  position() {
    return { epoch: this.epoch, seq: this.last };
  }

  /** join sets the baseline from joined and returns the filtered batches that came first. */
  join(epoch, seq) {
    this.based = true;
    this.epoch = epoch;
    this.last = seq;
    this.base = seq;
    const pre = this.pre;
    this.pre = [];
    const out = [];
    for (const b of pre) {
      const f = this.batch(b);
      if (f) out.push(f);
    }
    return out;
  }

  /** batch filters b's reliable entries in place; null when nothing is left to show. */
  batch(b) {
    if (!this.based) {
      if (this.pre.length >= this.maxPre) {
        this.count("preJoinOverflow");
        this.pre.shift();
      }
      this.pre.push(b);
      return null;
    }
    if (b.reliable.length > 0) b.reliable = this.accept(b.epoch, b.reliable);
    if (b.reliable.length === 0 && b.lossy.length === 0 && b.likes === 0 &&
        b.online === undefined && b.dropped === 0) {
      return null;
    }
    return b;
  }

  /**
   * resumed applies a resume's answer: the entries to deliver and, when the
   * resume could not recover, the fresh state the room was rebased to.
   * @returns {{replay: object[], rebased: object | null}}
   */
  resumed(m) {
    if (m.recovered && (m.epoch === "" || m.epoch === this.epoch)) {
      this.dropHeldOtherEpoch();
      return { replay: this.accept(this.epoch, m.entries), rebased: null };
    }
    const st = m.state || { epoch: m.epoch, seq: m.seq };
    return { replay: this.rebase(st.epoch, st.seq), rebased: st };
  }

  /** accept filters entries of one epoch: new ones, in seq order, contiguous. */
  accept(epoch, es) {
    if (epoch !== this.epoch) {
      if (this.retired.includes(epoch)) {
        this.count("staleEpoch", es.length);
        return [];
      }
      for (const e of es) this.hold(epoch, e);
      return [];
    }
    es = es.slice().sort(bySeq); // stable
    let out = [];
    for (const e of es) {
      if (e.seq <= this.last) {
        this.count(e.seq <= this.base ? "beforeBaseline" : "duplicates");
      } else if (e.seq === this.last + 1) {
        out.push(e);
        this.last++;
        out = this.drain(out);
      } else {
        this.hold(epoch, e);
      }
    }
    return out;
  }

  /** drain appends held entries that are now contiguous. */
  drain(out) {
    if (this.heldEpoch !== this.epoch) return out;
    while (this.held.size > 0) {
      const e = this.held.get(this.last + 1);
      if (!e) break;
      this.held.delete(e.seq);
      out.push(e);
      this.last++;
    }
    return out;
  }

  /** hold keeps an entry past a gap: one epoch at a time, at most maxHeld. */
  hold(epoch, e) {
    if (this.held.size > 0 && this.heldEpoch !== epoch) {
      this.count("staleEpoch", this.held.size);
      this.held.clear();
    }
    if (this.held.size === 0) {
      this.heldEpoch = epoch;
      this.count("gaps");
    }
    if (this.held.has(e.seq)) {
      this.count("duplicates");
      return;
    }
    if (this.held.size >= this.maxHeld) {
      this.count("heldOverflow", this.held.size);
      this.held.clear();
    }
    this.held.set(e.seq, e);
  }

  /** rebase moves to (epoch, seq) after an unrecoverable resume; returns held entries that follow. */
  rebase(epoch, seq) {
    if (epoch !== this.epoch) {
      const old = this.epoch;
      this.epoch = epoch;
      this.last = seq;
      this.retired = this.retired.filter((s) => s !== epoch);
      this.retire(old);
    } else if (seq > this.last) {
      this.last = seq;
    } // never back within an epoch: that would deliver entries twice
    this.base = this.last;
    this.dropHeldOtherEpoch();
    for (const s of [...this.held.keys()]) {
      if (s <= this.last) {
        this.held.delete(s);
        this.count("beforeBaseline");
      }
    }
    return this.drain([]);
  }

  /** dropHeldOtherEpoch drops held entries of another epoch once the server confirmed ours. */
  dropHeldOtherEpoch() {
    if (this.held.size > 0 && this.heldEpoch !== this.epoch) {
      this.count("staleEpoch", this.held.size);
      this.held.clear();
    }
  }

  retire(epoch) {
    if (epoch === "" || epoch === this.epoch || this.retired.includes(epoch)) return;
    this.retired.push(epoch);
    if (this.retired.length > MAX_RETIRED) this.retired.shift();
  }
}
