/** Baseline for bench case 3a: a Bun-compiled hello world, built as dist/kmq is: the runtime's floor. */
console.log("hello");
