# placeholder: the example's script is not copied
