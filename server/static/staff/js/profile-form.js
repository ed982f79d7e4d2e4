// The restaurant profile <-> the settings form. Lists are typed as short lines of text (hours
// "12:00-14:00, 18:00-21:30", tables "T2 4 3"), which work the same with a keyboard, a screen
// reader and a phone; a line that cannot be read is named, never guessed.

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const NUMBERS = ["slot_minutes", "covers_per_slot", "max_party_size", "min_lead_minutes", "max_days_ahead"];
const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function fillForm(form, profile) {
  const el = form.elements;
  el.name.value = profile.name ?? "";
  el.timezone.value = profile.timezone ?? "";
  el.availability.value = profile.availability ?? "always";
  for (const key of NUMBERS) el[key].value = profile[key] ?? "";
  for (const day of WEEKDAYS) {
    el[`hours-${day}`].value = (profile.hours?.[day] ?? []).map(([a, b]) => `${a}-${b}`).join(", ");
  }
  el.closures.value = (profile.closures ?? [])
    .map((c) => [c.from, c.to, c.reason ?? ""].join(" ").trim()).join("\n");
  el.dining_minutes.value = Object.entries(profile.dining_minutes ?? {})
    .map(([size, mins]) => `${size}=${mins}`).join(", ");
  el.tables.value = (profile.tables ?? [])
    .map((t) => [t.name, t.seats, t.min_party > 1 ? t.min_party : ""].join(" ").trim()).join("\n");
  el.combinations.value = (profile.combinations ?? []).map((c) => c.join("+")).join("\n");
}

/** The form as the PUT body, or {problems: {field: why}} naming each line it could not read. */
export function readForm(form) {
  const el = form.elements;
  const problems = {};
  const profile = {
    name: el.name.value.trim(),
    timezone: el.timezone.value.trim(),
    availability: el.availability.value,
  };
  for (const key of NUMBERS) {
    const raw = el[key].value.trim();
    if (raw === "") {
      if (key === "covers_per_slot") profile[key] = null; // no limit
      continue;
    }
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) problems[key] = "must be a whole number";
    else profile[key] = value;
  }
  profile.hours = {};
  for (const day of WEEKDAYS) {
    const windows = lines(el[`hours-${day}`].value, /[,\n]/).map((part) => part.split(/\s*[-–]\s*/));
    if (windows.some((w) => w.length !== 2 || !TIME.test(w[0]) || !TIME.test(w[1]))) {
      problems[`hours ${day}`] = "write windows as HH:MM-HH:MM, separated by commas";
    }
    profile.hours[day] = windows;
  }
  profile.closures = lines(el.closures.value, "\n").map((line, n) => {
    const [from, to, ...reason] = line.split(/\s+/);
    if (!DATE.test(from ?? "") || !DATE.test(to ?? "")) {
      problems[`closure ${n + 1}`] = "write: from-date to-date reason";
    }
    return { from, to, reason: reason.join(" ") };
  });
  profile.dining_minutes = {};
  for (const pair of lines(el.dining_minutes.value, /[,\n]/)) {
    const [size, mins] = pair.split(/\s*=\s*/);
    if (!/^\d+$/.test(size ?? "") || !/^\d+$/.test(mins ?? "")) {
      problems.dining_minutes = "write party=minutes, e.g. 2=90, 4=120";
    } else {
      profile.dining_minutes[size] = Number(mins);
    }
  }
  profile.tables = lines(el.tables.value, "\n").map((line, n) => {
    const [name, seats, minParty] = line.split(/\s+/);
    if (!name || !/^\d+$/.test(seats ?? "") || (minParty && !/^\d+$/.test(minParty))) {
      problems[`table ${n + 1}`] = "write: name seats [min party]";
    }
    const table = { name, seats: Number(seats) };
    if (minParty) table.min_party = Number(minParty);
    return table;
  });
  profile.combinations = lines(el.combinations.value, "\n")
    .map((line) => line.split(/\s*\+\s*/).filter(Boolean));
  return Object.keys(problems).length ? { problems } : { profile };
}

function lines(text, separator) {
  return text.split(separator).map((part) => part.trim()).filter(Boolean);
}
