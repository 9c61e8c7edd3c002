"""The presenter window's own process: a clean glfw window that shows the app's frames.

It runs apart from the app so that its OpenGL context never meets Dear PyGui's (whose GL
errors would otherwise surface in PyOpenGL's checks) and so that opening or closing it
cannot disturb the main window. Frames come through :class:`~app.shared_frame.SharedFrame`;
the window keeps the frame's aspect ratio and fills the rest with the frame's corner
colour. The process ends when its window is closed or its standard input ends (the app
closed it, or the app is gone).

    python -m app.presenter_process SHARED_NAME WIDTH HEIGHT
"""

from __future__ import annotations

import sys
import threading

from app.shared_frame import SharedFrame

#: Seconds to wait for window events between frame checks.
POLL_INTERVAL_S = 1.0 / 120.0
TITLE = "OMG-Avatar presenter"


def run(shared_name: str, width: int, height: int) -> None:
    """Show frames from the shared block ``shared_name`` until the window or the input closes."""
    import glfw
    from OpenGL import GL

    input_ended = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), input_ended.set()), daemon=True).start()
    shared = SharedFrame(shared_name)
    if not glfw.init():
        raise RuntimeError("glfw could not initialise a display for the presenter window")
    try:
        window = glfw.create_window(width, height, TITLE, None, None)
        if not window:
            raise RuntimeError("glfw could not create the presenter window")
        glfw.make_context_current(window)
        glfw.swap_interval(1)
        texture = GL.glGenTextures(1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, texture)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        frame_size, background = None, (0.0, 0.0, 0.0)
        while not glfw.window_should_close(window) and not input_ended.is_set():
            glfw.wait_events_timeout(POLL_INTERVAL_S)
            frame = shared.read_new()
            if frame is not None:
                frame_size = (frame.shape[1], frame.shape[0])
                background = tuple(frame[0, 0] / 255.0)
                GL.glTexImage2D(
                    GL.GL_TEXTURE_2D, 0, GL.GL_RGB, *frame_size, 0, GL.GL_RGB, GL.GL_UNSIGNED_BYTE, frame
                )
            _draw(GL, glfw.get_framebuffer_size(window), frame_size, background)
            glfw.swap_buffers(window)
    finally:
        glfw.terminate()
        shared.release()


def _draw(GL, window_size: tuple[int, int], frame_size: tuple[int, int] | None, background) -> None:
    """Clear to ``background`` and draw the texture letterboxed into the window."""
    width, height = window_size
    GL.glViewport(0, 0, width, height)
    GL.glClearColor(*background, 1.0)
    GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    if frame_size is None or width == 0 or height == 0:
        return
    scale = min(width / frame_size[0], height / frame_size[1])
    half_x, half_y = frame_size[0] * scale / width, frame_size[1] * scale / height
    GL.glEnable(GL.GL_TEXTURE_2D)
    GL.glBegin(GL.GL_QUADS)
    for (u, v), (x, y) in zip(((0, 1), (1, 1), (1, 0), (0, 0)), ((-1, -1), (1, -1), (1, 1), (-1, 1))):
        GL.glTexCoord2f(u, v)
        GL.glVertex2f(x * half_x, y * half_y)
    GL.glEnd()
    GL.glDisable(GL.GL_TEXTURE_2D)


def main(arguments: list[str]) -> None:
    name, width, height = arguments
    run(name, int(width), int(height))


if __name__ == "__main__":
    main(sys.argv[1:])
