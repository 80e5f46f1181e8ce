// Hands the microphone's samples (48 kHz mono, float) to the page in 128-sample blocks;
// voice.js cuts them into 20 ms frames while the talk button is held.
class HarkCapture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0]) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("hark-capture", HarkCapture);
