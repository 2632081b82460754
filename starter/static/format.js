// How the pages show money and time: one module, so every page reads the same.
// Money arrives as a decimal string ("2500.00") and is grouped as text, never through a
// float; instants arrive in UTC and are shown on the business clock, with its zone named.

const symbols = new Map();

function symbol(currency) {
  if (!symbols.has(currency)) {
    let sign = `${currency} `;
    try {
      const parts = new Intl.NumberFormat("en-US", { style: "currency", currency }).formatToParts(0);
      sign = parts.find((p) => p.type === "currency")?.value ?? sign;
    } catch {
      // An unknown code: shown as the code itself.
    }
    symbols.set(currency, sign);
  }
  return symbols.get(currency);
}

/** "2500.00", "USD" -> "$2,500.00"; null -> "—". */
export function money(amount, currency = "USD") {
  if (amount === null || amount === undefined || amount === "") return "—";
  const text = String(amount);
  const negative = text.startsWith("-");
  const [whole, cents = "00"] = (negative ? text.slice(1) : text).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "−" : ""}${symbol(currency)}${grouped}.${cents.padEnd(2, "0").slice(0, 2)}`;
}

const clocks = new Map();

function clockFor(timeZone) {
  if (!clocks.has(timeZone)) {
    clocks.set(
      timeZone,
      new Intl.DateTimeFormat("en-US", {
        timeZone,
        weekday: "short",
        day: "numeric",
        month: "short",
        year: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
        timeZoneName: "short",
      }),
    );
  }
  return clocks.get(timeZone);
}

/** An ISO instant on the business clock: "Fri, Nov 27, 2026, 14:00 EST". */
export function when(iso, timeZone) {
  if (!iso) return "—";
  return clockFor(timeZone).format(new Date(iso));
}

/** How long ago, in wall-clock time: "3 h 5 min ago". */
export function ago(iso, now = Date.now()) {
  const minutes = Math.max(0, Math.round((now - new Date(iso).getTime()) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** "awaiting_approval" -> "awaiting approval". */
export const words = (text) => String(text ?? "").replaceAll("_", " ");

/** "package_received" -> "Package received". */
export function title(text) {
  const plain = words(text);
  return plain ? plain[0].toUpperCase() + plain.slice(1) : plain;
}
