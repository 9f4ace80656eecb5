/**
 * The field codec against hand-written bytes, each direction on its own: kmq's encoder must write
 * exactly these bytes, and kmq's decoder must read these bytes into exactly these values. A bug
 * shared by both (which a round trip through kmq alone would hide) fails one of the two.
 */
import { AMQPView } from "@cloudamqp/amqp-client/amqp-view";
import { installClientFixes } from "../lib/amqp/client-fixes.ts";
import { fieldToJson, type FieldValue, RawField, TypedField } from "../lib/messages/fields.ts";
import { ByteWriter, writeField } from "../lib/amqp/wire.ts";
import { assertEquals } from "./assert.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

/** [what, value, its bytes (type tag first), its JSON form as -o json writes it] */
const CASES: [string, FieldValue, string, unknown][] = [
  ["boolean", true, "74 01", true],
  ["int8", new TypedField("b", -2), "62 fe", { $int8: -2 }],
  ["uint8", new TypedField("B", 255), "42 ff", { $uint8: 255 }],
  ["int16", new TypedField("s", -32768), "73 8000", { $int16: -32768 }],
  ["uint16", new TypedField("u", 65535), "75 ffff", { $uint16: 65535 }],
  ["int32", -2147483648, "49 80000000", -2147483648],
  ["uint32", new TypedField("i", 4294967295), "69 ffffffff", { $uint32: 4294967295 }],
  ["int64 past 2^53", new TypedField("l", 9007199254740993n), "6c 0020000000000001", {
    $int64: "9007199254740993",
  }],
  ["int64 as a plain number", 2147483648, "6c 0000000080000000", 2147483648],
  ["float", new TypedField("f", 1.5), "66 3fc00000", { $float: 1.5 }],
  ["double", 0.1, "64 3fb999999999999a", 0.1],
  ["double, integral", new TypedField("d", 2), "64 4000000000000000", { $double: 2 }],
  ["decimal", new TypedField("D", { scale: 3, value: -12345 }), "44 03 ffffcfc7", { $decimal: "-12.345" }],
  ["timestamp 2^64-1", new TypedField("T", 18446744073709551615n), "54 ffffffffffffffff", {
    $timestamp: "18446744073709551615",
  }],
  ["bytes", new TypedField("x", hex("00ff10")), "78 00000003 00ff10", { $bytes: "AP8Q" }],
  ["string", "é", "53 00000002 c3a9", "é"],
  ["void", null, "56", null],
  ["array", [1, "a"], "41 0000000b 49 00000001 53 00000001 61", [1, "a"]],
  [
    "table keyed __proto__",
    JSON.parse('{"__proto__": true}'),
    "46 0000000c 09 5f5f70726f746f5f5f 74 01",
    JSON.parse('{"__proto__": true}'),
  ],
  // a table kept as its bytes is written as they are; read back (not nested too deep) it is a table
  ["raw table", new RawField(hex("46 00000000")), "46 00000000", {}],
];

Deno.test("wire: kmq's encoder writes every field type as hand-written bytes say", () => {
  for (const [what, value, bytes] of CASES) {
    const w = new ByteWriter(16);
    writeField(w, value);
    assertEquals(Array.from(w.view()), Array.from(hex(bytes)), what);
  }
});

Deno.test("wire: kmq's decoder reads hand-written bytes of every field type into the right typed value", () => {
  installClientFixes();
  for (const [what, , bytes, json] of CASES) {
    const raw = hex(bytes);
    const view = new AMQPView(raw.buffer, raw.byteOffset, raw.byteLength) as unknown as {
      getField(at: number): [FieldValue, number];
    };
    const [value, length] = view.getField(0);
    assertEquals(length, raw.length, `${what}: length`);
    // compared in the JSON form, which names the type (a TypedField's tag) and keeps 64-bit digits
    assertEquals(JSON.stringify(fieldToJson(value)), JSON.stringify(json), what);
  }
});
