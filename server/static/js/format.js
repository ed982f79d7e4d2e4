// How reservation details are shown: dates and times in the caller's locale, and the
// confirmation number spelled so it cannot be misheard or misread.

const PHONETIC = {
  A: "Alfa", B: "Bravo", C: "Charlie", D: "Delta", E: "Echo", F: "Foxtrot", G: "Golf",
  H: "Hotel", I: "India", J: "Juliett", K: "Kilo", L: "Lima", M: "Mike", N: "November",
  O: "Oscar", P: "Papa", Q: "Quebec", R: "Romeo", S: "Sierra", T: "Tango", U: "Uniform",
  V: "Victor", W: "Whiskey", X: "X-ray", Y: "Yankee", Z: "Zulu",
  0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
  8: "eight", 9: "nine",
};

/** "2026-12-03" -> "Thursday, December 3, 2026" (as written where the caller is). */
export function formatDate(isoDate) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(isoDate ?? ""));
  if (!match) return String(isoDate ?? "");
  const day = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return day.toLocaleDateString(undefined, {
    weekday: "long", year: "numeric", month: "long", day: "numeric", timeZone: "UTC",
  });
}

/** "19:30" -> "7:30 PM" (or "19:30" where a 24-hour clock is the custom). */
export function formatTime(hhmm) {
  const match = /^(\d{1,2}):(\d{2})/.exec(String(hhmm ?? ""));
  if (!match) return String(hhmm ?? "");
  const at = new Date(Date.UTC(2000, 0, 1, Number(match[1]), Number(match[2])));
  return at.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
}

/** "K7P2QX" -> ["K", "7", ...] */
export function codeCharacters(code) {
  return Array.from(String(code ?? "").toUpperCase()).filter((ch) => /[A-Z0-9]/.test(ch));
}

/** "K7P" -> "Kilo · seven · Papa" */
export function spellCode(code) {
  return codeCharacters(code).map((ch) => PHONETIC[ch] ?? ch).join(" · ");
}

export function formatParty(size) {
  const n = Number(size);
  if (!Number.isFinite(n)) return String(size ?? "");
  return n === 1 ? "1 guest" : `${n} guests`;
}
