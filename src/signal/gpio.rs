//! The GPIO LED through rppal: one pin (single colour) or three (red, green, blue), each
//! active-high or active-low. On anything but a Raspberry Pi rppal answers
//! `UnknownModel`, which the chooser turns into the simulated LED.

use super::backend::Backend;
use super::pattern::Output;
use super::Error;
use rppal::gpio::{Gpio, OutputPin};

/// One output pin and its polarity.
#[derive(Debug)]
struct Pin {
    pin: OutputPin,
    active_low: bool,
}

impl Pin {
    fn light(&mut self, lit: bool) {
        if high(lit, self.active_low) {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
    }
}

/// The electrical level that makes a pin `lit`: high, unless the pin is active-low.
fn high(lit: bool, active_low: bool) -> bool {
    lit != active_low
}

/// Which pins are lit for `out`: a single pin follows on/off; three pins show the colour.
pub fn lit_pins(out: Output, pins: usize) -> Vec<bool> {
    if pins == 1 {
        vec![out.on]
    } else {
        out.colour
            .rgb()
            .iter()
            .take(pins)
            .map(|&c| out.on && c)
            .collect()
    }
}

/// Each pin's polarity: one value for all pins, one per pin, or active-high if none.
fn active_low_of(active_low: &[bool], i: usize) -> bool {
    active_low
        .get(i)
        .or_else(|| active_low.first())
        .copied()
        .unwrap_or(false)
}

/// A GPIO LED.
#[derive(Debug)]
pub struct GpioLed {
    pins: Vec<Pin>,
}

impl GpioLed {
    /// Opens `pins` (BCM numbers) as outputs, dark. `active_low` holds one value for all
    /// pins or one per pin (checked by the config).
    pub fn open(pins: &[u8], active_low: &[bool]) -> Result<GpioLed, Error> {
        let first = pins.first().copied().unwrap_or(0);
        let gpio = Gpio::new().map_err(|e| Error::gpio(first, e))?;
        let mut out = Vec::with_capacity(pins.len());
        for (i, &n) in pins.iter().enumerate() {
            let active_low = active_low_of(active_low, i);
            let pin = gpio.get(n).map_err(|e| Error::gpio(n, e))?;
            // Start dark whatever the polarity.
            let pin = if active_low {
                pin.into_output_high()
            } else {
                pin.into_output_low()
            };
            out.push(Pin { pin, active_low });
        }
        Ok(GpioLed { pins: out })
    }
}

impl Backend for GpioLed {
    fn kind(&self) -> &'static str {
        "gpio"
    }

    fn set(&mut self, out: Output) -> Result<(), Error> {
        let lit = lit_pins(out, self.pins.len());
        for (pin, lit) in self.pins.iter_mut().zip(lit) {
            pin.light(lit);
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<(), Error> {
        // Dark explicitly: rppal resets pins on drop, but drop does not run on every exit.
        for pin in &mut self.pins {
            pin.light(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::pattern::Colour;

    #[test]
    fn rgb_pins_show_the_colour_and_a_single_pin_follows_on_off() {
        let yellow = Output {
            on: true,
            colour: Colour::Yellow,
        };
        assert_eq!(lit_pins(yellow, 3), [true, true, false]);
        assert_eq!(lit_pins(yellow, 1), [true]);
        let dark = Output {
            on: false,
            ..yellow
        };
        assert_eq!(lit_pins(dark, 3), [false, false, false]);
        assert_eq!(lit_pins(dark, 1), [false]);
    }

    #[test]
    fn active_low_pins_are_driven_low_to_light() {
        assert!(high(true, false) && !high(false, false));
        assert!(!high(true, true) && high(false, true));
        assert!(active_low_of(&[true], 2), "one value applies to all pins");
        assert!(!active_low_of(&[true, false, true], 1), "or one per pin");
        assert!(!active_low_of(&[], 0), "active-high by default");
    }
}
