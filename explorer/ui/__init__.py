"""Everything that imports streamlit. Panels are ``render(ctx)`` functions taking a ui.context.Ctx."""
