/** kmq's version: the one in package.json, built into the binary. */
import pkg from "../../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
