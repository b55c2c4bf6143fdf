#!/usr/bin/env node
// Runs a firmware .hex on an emulated ATmega328P (avr8js) at real-time pace, with USART0 bridged
// to one TCP client (pyserial opens it as socket://127.0.0.1:PORT) and OC1A's edges recorded in
// emulated time. Usage:
//   node run.js --hex pbt_pulse.hex [--port 0] [--port-file F] [--edges F.jsonl] [--stats F.json]
//               [--corrupt-tx N ...]
// --edges: one JSON line per OC1A (PB1, digital pin 9) change:
//   {"level": 0|1, "cycle": n, "t": emulated s since reset, "wall": epoch s of that instant}
// --corrupt-tx N: flip bit 0 of the N-th byte the MCU transmits (0-based), to test the host's CRC.
// Host bytes are injected at the emulated instant they arrived (then shifted in at the baud rate),
// so latency seen on the pin is the host's plus the firmware's, not the emulator's slice length.
'use strict';

const fs = require('fs');
const net = require('net');
const avr = require('avr8js');

const F_CPU = 16e6;
const FLASH_BYTES = 0x8000;
const OC1A_BIT = 1; // PB1
const MAX_LAG_S = 1.0; // further behind than this (stopped, starved): re-anchor; else catch up
const BOOT_S = 0.5;
const SLEEP_OPCODE = 0x9588;
const SMCR = 0x53;
const SMCR_SE = 1; // further behind real time than this: re-anchor instead of racing

function parseArgs(argv) {
  const opts = { port: 0, corruptTx: new Set() };
  for (let i = 2; i < argv.length; i += 2) {
    const [key, val] = [argv[i], argv[i + 1]];
    if (val === undefined) throw new Error(`${key} needs a value`);
    if (key === '--hex') opts.hex = val;
    else if (key === '--port') opts.port = Number(val);
    else if (key === '--port-file') opts.portFile = val;
    else if (key === '--edges') opts.edges = val;
    else if (key === '--stats') opts.stats = val;
    else if (key === '--corrupt-tx') opts.corruptTx.add(Number(val));
    else throw new Error(`unknown option ${key}`);
  }
  if (!opts.hex) throw new Error('--hex FILE is required');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`--port must be 0..65535, got ${opts.port}`);
  }
  return opts;
}

function loadHex(path) {
  // Intel HEX: data (00) and end (01) records; a 64 KiB image is all an ATmega328P has.
  const bytes = new Uint8Array(FLASH_BYTES);
  let base = 0;
  for (const [n, raw] of fs.readFileSync(path, 'utf8').split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line) continue;
    if (line[0] !== ':') throw new Error(`${path}:${n + 1}: not an Intel HEX record`);
    const rec = Buffer.from(line.slice(1), 'hex');
    const sum = rec.reduce((a, b) => (a + b) & 0xff, 0);
    if (sum !== 0) throw new Error(`${path}:${n + 1}: bad checksum`);
    const [len, type] = [rec[0], rec[3]];
    const addr = base + ((rec[1] << 8) | rec[2]);
    if (type === 0) {
      if (addr + len > FLASH_BYTES) throw new Error(`${path}:${n + 1}: beyond 32 KiB flash`);
      bytes.set(rec.subarray(4, 4 + len), addr);
    } else if (type === 1) break;
    else if (type === 2) base = ((rec[4] << 8) | rec[5]) << 4;
  }
  return new Uint16Array(bytes.buffer);
}

const wallNow = () => (performance.timeOrigin + performance.now()) / 1e3;

class Board {
  constructor(progMem, opts) {
    this.cpu = new avr.CPU(progMem);
    if (!('nextClockEvent' in this.cpu)) {
      throw new Error('avr8js changed: CPU.nextClockEvent is gone; update sleepUntilInterrupt');
    }
    this.timers = [avr.timer0Config, avr.timer1Config, avr.timer2Config].map(
      (c) => new avr.AVRTimer(this.cpu, c));
    this.usart = new avr.AVRUSART(this.cpu, avr.usart0Config, F_CPU);
    this.portB = new avr.AVRIOPort(this.cpu, avr.portBConfig);
    this.portD = new avr.AVRIOPort(this.cpu, avr.portDConfig);
    this.rx = []; // {byte, cycle}: host bytes waiting for their instant and a free receiver
    this.tx = [];
    this.txCount = 0;
    this.corruptTx = opts.corruptTx;
    this.edges = opts.edges ? fs.openSync(opts.edges, 'w') : null;
    this.t0 = wallNow(); // wall time of cycle 0; moved forward when the emulator falls behind
    this.stats = { reanchors: 0, lag_max_s: 0, slept_cycles: 0, edges: 0, rx_bytes: 0, tx_bytes: 0 };
    this.usart.onByteTransmit = (b) => this.transmit(b);
    this.usart.onRxComplete = () => this.feed();
    this.portB.addListener((now, prev) => this.pinChanged(now, prev));
  }

  transmit(b) {
    const out = this.corruptTx.has(this.txCount) ? b ^ 1 : b;
    this.txCount += 1;
    this.stats.tx_bytes += 1;
    this.tx.push(out);
  }

  pinChanged(now, prev) {
    const mask = 1 << OC1A_BIT;
    if (((now ^ prev) & mask) === 0 || this.edges === null) return;
    const cycle = this.cpu.cycles;
    const t = cycle / F_CPU;
    const rec = { level: now & mask ? 1 : 0, cycle, t, wall: this.t0 + t };
    fs.writeSync(this.edges, `${JSON.stringify(rec)}\n`);
    this.stats.edges += 1;
  }

  cycleAt(wall) {
    return Math.max(this.cpu.cycles, Math.round((wall - this.t0) * F_CPU));
  }

  receive(data) {
    const cycle = this.cycleAt(wallNow());
    for (const byte of data) this.rx.push({ byte, cycle });
    this.stats.rx_bytes += data.length;
  }

  feed() {
    // Hands the next due host byte to the USART; it arrives one character time later.
    if (this.rx.length && this.rx[0].cycle <= this.cpu.cycles && !this.usart.rxBusy) {
      this.usart.writeByte(this.rx.shift().byte);
    }
  }

  runUntil(target) {
    const { cpu } = this;
    while (cpu.cycles < target) {
      this.feed();
      const next = this.rx.length && !this.usart.rxBusy ? this.rx[0].cycle : target;
      const stop = Math.min(target, Math.max(next, cpu.cycles + 1));
      while (cpu.cycles < stop) {
        const sleeping = cpu.progMem[cpu.pc] === SLEEP_OPCODE && cpu.data[SMCR] & SMCR_SE;
        avr.avrInstruction(cpu);
        cpu.tick();
        if (sleeping) this.sleepUntilInterrupt(stop);
      }
    }
  }

  // avr8js executes SLEEP as a no-op, so an idle MCU would cost a full emulation of its wait
  // loop. Until an interrupt is taken (or `stop`), jump from one clock event (timer tick, USART
  // character) to the next. This reads CPU.nextClockEvent, which avr8js does not export: the
  // constructor checks it exists, and the tests check the skip happens.
  sleepUntilInterrupt(stop) {
    const { cpu } = this;
    if (!cpu.interruptsEnabled) return; // SLEEP with interrupts off never wakes: keep stepping
    const pc = cpu.pc;
    while (cpu.pc === pc && cpu.cycles < stop) {
      const ev = cpu.nextClockEvent;
      const wake = ev ? Math.min(stop, ev.cycles) : stop;
      if (wake > cpu.cycles) {
        this.stats.slept_cycles += wake - cpu.cycles;
        cpu.cycles = wake;
      }
      cpu.tick();
    }
  }

  boot(seconds) {
    // Power-up unpaced (setup() done, the JIT warm) before the host can connect, as a board
    // powers up before its port is opened; real time starts after it.
    this.runUntil(Math.round(seconds * F_CPU));
    this.t0 = wallNow() - this.cpu.cycles / F_CPU;
  }

  step() {
    const target = Math.round((wallNow() - this.t0) * F_CPU);
    this.runUntil(target);
    const lag = wallNow() - this.t0 - this.cpu.cycles / F_CPU;
    this.stats.lag_max_s = Math.max(this.stats.lag_max_s, lag);
    if (lag > MAX_LAG_S) {
      this.t0 += lag;
      this.stats.reanchors += 1;
    }
    const out = this.tx;
    this.tx = [];
    return out;
  }

  summary() {
    return { ...this.stats, cycles: this.cpu.cycles, emulated_s: this.cpu.cycles / F_CPU };
  }
}

function serve(board, opts) {
  let client = null;
  const server = net.createServer((sock) => {
    if (client) client.destroy(); // one host at a time, like a serial port
    client = sock;
    sock.setNoDelay(true);
    sock.on('data', (d) => board.receive(d));
    sock.on('close', () => { if (client === sock) client = null; });
    sock.on('error', () => {});
  });
  server.listen(opts.port, '127.0.0.1', () => {
    const { port } = server.address();
    if (opts.portFile) {
      fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
      fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
    }
    process.stdout.write(`listening 127.0.0.1:${port}\n`);
  });
  const tick = () => {
    const out = board.step();
    if (out.length && client) client.write(Buffer.from(out));
    setTimeout(tick, 0); // ~1 ms: the emulator then catches up in one slice
  };
  tick();
  return server;
}

function main() {
  const opts = parseArgs(process.argv);
  const board = new Board(loadHex(opts.hex), opts);
  board.boot(BOOT_S);
  serve(board, opts);
  const stop = () => {
    if (opts.stats) fs.writeFileSync(opts.stats, `${JSON.stringify(board.summary())}\n`);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

try {
  main();
} catch (e) {
  process.stderr.write(`pbt emulator: ${e.message}\n`);
  process.exit(2);
}
