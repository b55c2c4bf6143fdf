// pbt_pulse: reference pulse generator for pbt_driver's serial offload backend
// (pulse_backend: serial). Arduino Uno / Nano (ATmega328P, 16 MHz).
//
// Protocol (src/pbt_driver/README.md, "Serial offload protocol"), 115200 8N1, little endian:
//   command  host -> MCU, 14 bytes: 'P' 'B' | type u8 | seq u8 | width_us u32 | amplitude f32 |
//            crc16 u16 (CRC-16/CCITT-FALSE over type..amplitude)
//            type 0x01 PULSE (emit one pulse of width_us), 0x02 PING (reply only)
//   reply    MCU -> host, 7 bytes: 'B' 'P' | type|0x80 | seq | status u8 | crc16 (type..status)
//            status 0 OK (pulse started / pong), 1 BUSY (previous pulse still on: dropped),
//            2 BAD (width outside 1..262143 us); the pulse starts before its reply is sent
//   Frames with a bad CRC are ignored (no reply); the parser then searches the bytes it buffered
//   after the false 'P' 'B' for the next 'P' 'B', so noise never swallows a real command (the
//   host resyncs on replies the same way).
//
// Timing: the pulse is on OC1A (digital pin 9). The rising edge is forced in software when the
// command is complete; the falling edge is made by Timer1's compare-match hardware, so the width
// is exact to one timer tick (0.5 us up to 32767 us, 4 us above) whatever the loop is doing.
// Between bytes the CPU sleeps (idle mode: timers and USART run, any interrupt wakes it).

#include <Arduino.h>
#include <avr/sleep.h>
#include <string.h>

static const uint8_t CMD_LEN = 14;
static const uint8_t PULSE = 0x01, PING = 0x02;
static const uint8_t ST_OK = 0, ST_BUSY = 1, ST_BAD = 2;
static const uint32_t WIDTH_MAX_US = 262143UL;
static const uint32_t FINE_MAX_US = 32767UL;  // clk/8 range: 0.5 us ticks

static volatile bool busy = false;
static uint8_t frame[CMD_LEN];
static uint8_t have = 0;

static uint16_t crc16(const uint8_t *p, uint8_t n) {
  uint16_t crc = 0xFFFF;
  while (n--) {
    crc ^= (uint16_t)(*p++) << 8;
    for (uint8_t i = 0; i < 8; i++) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : (crc << 1);
  }
  return crc;
}

static void reply(uint8_t type, uint8_t seq, uint8_t status) {
  uint8_t r[7] = {'B', 'P', (uint8_t)(type | 0x80), seq, status, 0, 0};
  uint16_t c = crc16(r + 2, 3);
  r[5] = c & 0xFF;
  r[6] = c >> 8;
  Serial.write(r, sizeof r);
}

ISR(TIMER1_COMPA_vect) {
  // OC1A was already cleared by the compare match; stop the timer and accept the next pulse.
  TCCR1B = 0;
  TIMSK1 = 0;
  busy = false;
}

static uint8_t start_pulse(uint32_t width_us) {
  if (width_us < 1 || width_us > WIDTH_MAX_US) return ST_BAD;
  if (busy) return ST_BUSY;
  uint16_t ticks, first;
  uint8_t start;
  if (width_us <= FINE_MAX_US) {
    ticks = (uint16_t)(width_us * 2);  // clk/8: 0.5 us per tick
    first = 1;  // the timer starts ~7 cycles after the forced edge: almost one tick, made up here
    start = _BV(WGM12) | _BV(CS11);  // CTC mode 4, TOP = OCR1A
  } else {
    uint32_t t = (width_us + 2) / 4;  // clk/64: 4 us per tick, rounded
    ticks = t > 0xFFFF ? 0xFFFF : (uint16_t)t;
    first = 0;
    start = _BV(WGM12) | _BV(CS11) | _BV(CS10);
  }
  const uint8_t set_on_match = _BV(COM1A1) | _BV(COM1A0), clear_on_match = _BV(COM1A1);
  busy = true;
  uint8_t sreg = SREG;
  cli();  // nothing between the forced edge and the timer start but these stores
  TCCR1B = 0;
  TCNT1 = first;
  OCR1A = ticks;
  TIFR1 = _BV(OCF1A);
  TIMSK1 = _BV(OCIE1A);
  TCCR1A = set_on_match;
  TCCR1C = _BV(FOC1A);      // rising edge now
  TCCR1A = clear_on_match;  // falling edge at the compare match
  GTCCR = _BV(PSRSYNC);     // prescaler from zero: the first tick a full tick after the start
  TCCR1B = start;
  SREG = sreg;
  return ST_OK;
}

static bool handle(const uint8_t *f) {
  uint16_t crc = f[12] | ((uint16_t)f[13] << 8);
  if (crc16(f + 2, 10) != crc) return false;
  uint8_t type = f[2], seq = f[3];
  uint32_t width = (uint32_t)f[4] | ((uint32_t)f[5] << 8) | ((uint32_t)f[6] << 16) |
                   ((uint32_t)f[7] << 24);
  if (type == PULSE) {
    uint8_t st = start_pulse(width);  // first: the pulse must not wait for the reply
    reply(type, seq, st);
  } else if (type == PING) {
    reply(type, seq, ST_OK);
  }
  return true;
}

// Drops the first buffered byte and moves the next 'P' 'B' (or a trailing 'P') to the front.
static void resync() {
  uint8_t i = 1;
  while (i < have && !(frame[i] == 'P' && (i + 1 == have || frame[i + 1] == 'B'))) i++;
  memmove(frame, frame + i, have - i);
  have -= i;
}

static void push(uint8_t b) {
  frame[have++] = b;
  while (have > 0) {
    if (frame[0] != 'P' || (have >= 2 && frame[1] != 'B')) {
      resync();
    } else if (have < CMD_LEN) {
      return;
    } else if (handle(frame)) {
      have = 0;
    } else {
      resync();  // bad CRC: the real command may start inside this false frame
    }
  }
}

static void sleep_until_interrupt() {
  set_sleep_mode(SLEEP_MODE_IDLE);
  cli();
  if (!Serial.available()) {  // checked with interrupts off: no byte can slip in unseen
    sleep_enable();
    sei();  // the instruction after sei runs first: the sleep cannot miss a wake-up
    sleep_cpu();
    sleep_disable();
  }
  sei();
}

void setup() {
  digitalWrite(9, LOW);
  pinMode(9, OUTPUT);  // OC1A
  TCCR1A = 0;
  TCCR1B = 0;
  Serial.begin(115200);
}

void loop() {
  while (Serial.available()) push((uint8_t)Serial.read());
  sleep_until_interrupt();
}
