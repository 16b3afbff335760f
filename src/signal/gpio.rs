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
        if lit != self.active_low {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
    }
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
            let active_low = active_low
                .get(i)
                .or_else(|| active_low.first())
                .copied()
                .unwrap_or(false);
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
        if let [single] = self.pins.as_mut_slice() {
            single.light(out.on);
        } else {
            for (pin, lit) in self.pins.iter_mut().zip(out.colour.rgb()) {
                pin.light(out.on && lit);
            }
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
