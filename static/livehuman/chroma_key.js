/* Green-screen keying of the avatar video in a WebGL fragment shader.
 *
 * The key is computed in YCbCr chroma space, so it ignores brightness: a pixel's
 * distance from the key colour's (Cb, Cr) sets its alpha through a smoothstep
 * between `similarity` and `similarity + smoothness`. Spill suppression pulls the
 * key colour's dominant channel back towards the other two on the edges, where
 * green light from the screen tints hair and skin.
 */
"use strict";

class ChromaKeyRenderer {
  constructor(video, canvas) {
    this.video = video;
    this.canvas = canvas;
    // preserveDrawingBuffer: the keyed picture can be read back (snapshots, tests) after it is composited.
    this.gl = canvas.getContext("webgl", { premultipliedAlpha: false, alpha: true, preserveDrawingBuffer: true });
    this.params = { color: [0, 1, 0], similarity: 0.35, smoothness: 0.08, spill: 0.5 };
    this.running = false;
    if (!this.gl) throw new Error("WebGL is not available");
    this._setup();
  }

  static hexToRgb(hex) {
    const value = parseInt(hex.slice(1), 16);
    return [((value >> 16) & 255) / 255, ((value >> 8) & 255) / 255, (value & 255) / 255];
  }

  _compile(type, source) {
    const gl = this.gl;
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  _setup() {
    const gl = this.gl;
    const vertex = `
      attribute vec2 position;
      varying vec2 uv;
      void main() {
        uv = vec2((position.x + 1.0) / 2.0, (1.0 - position.y) / 2.0);
        gl_Position = vec4(position, 0.0, 1.0);
      }`;
    const fragment = `
      precision mediump float;
      varying vec2 uv;
      uniform sampler2D frame;
      uniform vec3 keyColor;
      uniform float similarity;
      uniform float smoothness;
      uniform float spill;
      vec2 chroma(vec3 rgb) {
        return vec2(-0.1687 * rgb.r - 0.3313 * rgb.g + 0.5 * rgb.b,
                     0.5 * rgb.r - 0.4187 * rgb.g - 0.0813 * rgb.b);
      }
      void main() {
        vec4 pixel = texture2D(frame, uv);
        float distance = length(chroma(pixel.rgb) - chroma(keyColor));
        float alpha = smoothstep(similarity * 0.5, (similarity + smoothness) * 0.5, distance);
        float spillAmount = pow(clamp(1.0 - alpha, 0.0, 1.0), 1.5) * spill;
        vec3 rgb = pixel.rgb;
        float limit = max(rgb.r, rgb.b);
        if (keyColor.g >= keyColor.r && keyColor.g >= keyColor.b) {
          rgb.g = mix(rgb.g, min(rgb.g, limit), clamp(spill + spillAmount, 0.0, 1.0));
        }
        gl_FragColor = vec4(rgb, alpha);
      }`;
    const program = gl.createProgram();
    gl.attachShader(program, this._compile(gl.VERTEX_SHADER, vertex));
    gl.attachShader(program, this._compile(gl.FRAGMENT_SHADER, fragment));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    gl.useProgram(program);
    this.program = program;

    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const position = gl.getAttribLocation(program, "position");
    gl.enableVertexAttribArray(position);
    gl.vertexAttribPointer(position, 2, gl.FLOAT, false, 0, 0);

    this.texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    this.uniforms = {
      keyColor: gl.getUniformLocation(program, "keyColor"),
      similarity: gl.getUniformLocation(program, "similarity"),
      smoothness: gl.getUniformLocation(program, "smoothness"),
      spill: gl.getUniformLocation(program, "spill"),
    };
  }

  set(params) {
    Object.assign(this.params, params);
  }

  _draw() {
    if (!this.running) return;
    const gl = this.gl;
    const video = this.video;
    if (video.readyState >= 2 && video.videoWidth > 0) {
      if (this.canvas.width !== video.videoWidth || this.canvas.height !== video.videoHeight) {
        this.canvas.width = video.videoWidth;
        this.canvas.height = video.videoHeight;
      }
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.bindTexture(gl.TEXTURE_2D, this.texture);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, video);
      gl.uniform3fv(this.uniforms.keyColor, this.params.color);
      gl.uniform1f(this.uniforms.similarity, this.params.similarity);
      gl.uniform1f(this.uniforms.smoothness, this.params.smoothness);
      gl.uniform1f(this.uniforms.spill, this.params.spill);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    }
    requestAnimationFrame(() => this._draw());
  }

  start() {
    if (this.running) return;
    this.running = true;
    requestAnimationFrame(() => this._draw());
  }

  stop() {
    this.running = false;
  }
}

window.ChromaKeyRenderer = ChromaKeyRenderer;
