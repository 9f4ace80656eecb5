/**
 * Reads a JSON array as it arrives, handing each element to a callback as soon as it is whole:
 * a management API's list of 200,000 queues is never held as one text, only one element's text
 * at a time (each parsed with the runtime's own JSON.parse, so every value is read as JSON.parse
 * reads it, `__proto__` keys included).
 */
/** The text does not begin with `[`: some other JSON value (or no JSON at all). */
export class NotAnArray extends Error {
  constructor() {
    super("the answer is not a JSON array");
    this.name = "NotAnArray";
  }
}

export class JsonArrayReader {
  readonly #decoder = new TextDecoder();
  readonly #onElement: (element: unknown) => void;
  /** 0 before the `[`, 1 inside the array, deeper inside an element; -1 after the `]`. */
  #depth = 0;
  #inString = false;
  /** How many backslashes ended the last chunk inside a string (an odd count escapes the next `"`). */
  #backslashes = 0;
  /** The text of the element read so far that began in an earlier chunk. */
  #pending = "";
  /** Whether an element has begun (its first character was seen). */
  #inElement = false;
  #count = 0;

  /** @param onElement called with each element, parsed, in order; what it throws stops the reading. */
  constructor(onElement: (element: unknown) => void) {
    this.#onElement = onElement;
  }

  /** How many elements were handed on. */
  get count(): number {
    return this.#count;
  }

  /**
   * Reads one chunk of the answer; throws NotAnArray when the text begins with anything but `[`,
   * a SyntaxError where the array is malformed, and what `onElement` throws.
   */
  push(chunk: Uint8Array): void {
    this.#scan(this.#decoder.decode(chunk, { stream: true }));
  }

  /** The answer has ended: throws a SyntaxError unless it was one whole array. */
  end(): void {
    this.#scan(this.#decoder.decode());
    if (this.#depth !== -1) throw new SyntaxError("the JSON array is not complete");
  }

  #scan(text: string): void {
    let start = this.#inElement ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      if (this.#inString) {
        const close = this.#closingQuote(text, i);
        if (close < 0) break;
        i = close;
        this.#inString = false;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      if (this.#depth === 0) {
        if (c !== 0x5b) throw new NotAnArray();
        this.#depth = 1;
        continue;
      }
      if (this.#depth === -1) throw new SyntaxError("text after the JSON array");
      if (this.#depth === 1 && (c === 0x2c || c === 0x5d)) {
        // `,` or `]` between elements: the element before it (if any) is whole
        if (this.#inElement) {
          this.#element(this.#pending + text.slice(start, i));
        } else if (c === 0x2c || this.#count > 0) {
          throw new SyntaxError("an empty element in the JSON array");
        }
        if (c === 0x5d) this.#depth = -1;
        start = -1;
        continue;
      }
      if (!this.#inElement) {
        this.#inElement = true;
        start = i;
      }
      if (c === 0x22) {
        this.#inString = true;
        this.#backslashes = 0;
      } else if (c === 0x7b || c === 0x5b) this.#depth++;
      else if (c === 0x7d || c === 0x5d) this.#depth--;
    }
    if (this.#inElement) this.#pending += start >= 0 ? text.slice(start) : text;
  }

  /** The index of the `"` that closes the string `text[from]` is in, or -1 when this text ends first. */
  #closingQuote(text: string, from: number): number {
    for (let i = text.indexOf('"', from); i >= 0; i = text.indexOf('"', i + 1)) {
      if (this.#escapes(text, from, i) % 2 === 0) return i;
    }
    this.#backslashes = this.#escapes(text, from, text.length);
    return -1;
  }

  /** The backslashes right before `text[at]`, counting those that ended the last chunk when they reach `from` 0. */
  #escapes(text: string, from: number, at: number): number {
    let n = 0;
    while (at - 1 - n >= from && text.charCodeAt(at - 1 - n) === 0x5c) n++;
    return from === 0 && at - n === 0 ? n + this.#backslashes : n;
  }

  #element(text: string): void {
    this.#pending = "";
    this.#inElement = false;
    this.#count++;
    this.#onElement(JSON.parse(text));
  }
}
