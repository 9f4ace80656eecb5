/**
 * The platforms kmq is released for: the archive's name, Bun's and Deno's names for the target,
 * and what `file` says of a good executable for it (checked by tests/release/release_check.ts).
 * install.sh maps `uname -s`/`uname -m` onto the same names.
 */
export interface Target {
  name: string;
  bun: string;
  /** deno compile --target; undefined where Deno has no such target. */
  deno?: string;
  windows?: boolean;
  file: RegExp;
}

export const TARGETS: Target[] = [
  { name: "linux-x64", bun: "bun-linux-x64", deno: "x86_64-unknown-linux-gnu", file: /ELF 64-bit.*x86-64/ },
  {
    name: "linux-arm64",
    bun: "bun-linux-arm64",
    deno: "aarch64-unknown-linux-gnu",
    file: /ELF 64-bit.*aarch64/,
  },
  { name: "linux-x64-musl", bun: "bun-linux-x64-musl", file: /ELF 64-bit.*x86-64.*ld-musl/ },
  { name: "darwin-x64", bun: "bun-darwin-x64", deno: "x86_64-apple-darwin", file: /Mach-O 64-bit x86_64/ },
  {
    name: "darwin-arm64",
    bun: "bun-darwin-arm64",
    deno: "aarch64-apple-darwin",
    file: /Mach-O 64-bit arm64/,
  },
  {
    name: "windows-x64",
    bun: "bun-windows-x64",
    deno: "x86_64-pc-windows-msvc",
    windows: true,
    file: /PE32\+ executable.*x86-64/,
  },
];
