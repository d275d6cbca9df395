"""Evaluation reports: metric tables (text, Markdown), inline-SVG charts, the HTML report."""
