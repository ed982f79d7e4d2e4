// The live transcript: one bubble per conversation item, caller and assistant, updated in place
// as deltas, transcriptions and interruptions arrive.

export class Transcript {
  constructor(list) {
    this.list = list;
    this.bubbles = new Map(); // item id -> {li, text}
    this.placeholder = list.querySelector(".transcript-empty");
    this.stick = true; // follow new lines unless the caller scrolled up to read
    list.addEventListener("scroll", () => {
      this.stick = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    });
  }

  /** A typed turn (no item id is known: the page does not choose one). */
  userTyped(text) {
    this.#add(null, "user", text, "typed");
  }

  /** The caller started speaking: a bubble that will become "(spoken)" or its transcription. */
  userSpeaking(itemId) {
    const bubble = this.bubbles.get(itemId) ?? this.#add(itemId, "user", "(speaking…)", "spoken");
    bubble.li.classList.add("is-live");
  }

  userSpoke(itemId) {
    const bubble = this.bubbles.get(itemId) ?? this.#add(itemId, "user", "", "spoken");
    bubble.li.classList.remove("is-live");
    if (!bubble.final) bubble.text.textContent = "(spoken)";
  }

  userTranscription(itemId, transcript) {
    const bubble = this.bubbles.get(itemId) ?? this.#add(itemId, "user", "", "spoken");
    bubble.li.classList.remove("is-live");
    bubble.final = true;
    bubble.text.textContent = transcript?.trim() || "(spoken)";
  }

  assistantDelta(itemId, delta) {
    const bubble = this.bubbles.get(itemId) ?? this.#add(itemId, "assistant", "", "spoken");
    bubble.li.classList.add("is-live");
    this.list.setAttribute("aria-busy", "true"); // announce the reply once, when complete
    bubble.text.textContent += delta;
    this.#scroll();
  }

  assistantDone(itemId, transcript) {
    const bubble = this.bubbles.get(itemId) ?? this.#add(itemId, "assistant", "", "spoken");
    bubble.li.classList.remove("is-live");
    this.list.setAttribute("aria-busy", "false");
    if (typeof transcript === "string" && transcript) bubble.text.textContent = transcript;
    this.#scroll();
  }

  /** The caller cut in: the rest of this reply was never heard. */
  assistantInterrupted(itemId) {
    const bubble = this.bubbles.get(itemId);
    if (!bubble || bubble.li.classList.contains("is-interrupted")) return;
    bubble.li.classList.add("is-interrupted");
    bubble.li.classList.remove("is-live");
    this.list.setAttribute("aria-busy", "false");
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "interrupted";
    bubble.meta.append(tag);
  }

  /** A line from the page itself (call started, call ended...). */
  note(text) {
    this.#add(null, "note", text);
  }

  #add(itemId, role, text, how) {
    this.placeholder?.remove();
    this.placeholder = null;
    const li = document.createElement("li");
    li.className = `turn turn-${role}`;
    if (itemId) li.dataset.itemId = itemId;
    if (how) li.dataset.how = how;
    const meta = document.createElement("p");
    meta.className = "turn-meta";
    const body = document.createElement("p");
    body.className = "turn-text";
    body.textContent = text;
    if (role !== "note") {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = role === "user" ? "You" : "Host";
      meta.append(who);
      li.append(meta);
    }
    li.append(body);
    this.list.append(li);
    const bubble = { li, text: body, meta, final: false };
    if (itemId) this.bubbles.set(itemId, bubble);
    this.#scroll();
    return bubble;
  }

  #scroll() {
    if (this.stick) this.list.scrollTop = this.list.scrollHeight;
  }
}
